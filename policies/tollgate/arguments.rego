# Argument rules: decided on a call's arguments, at call time, before anything reaches the tool.
package tollgate.arguments

# Filesystem-like tools may only touch paths under their root. Server -> tool -> root.
path_roots := {"files": {
	"read_file": "/srv/shared/",
	"write_file": "/srv/shared/",
	"list_directory": "/srv/shared/",
}}

# Arguments of those tools that hold paths.
path_arguments := {"path", "source", "destination"}

# SQL tools: statements that drop objects are refused. Server -> tool -> argument holding the SQL.
sql_tools := {"db": {"query": "sql"}}

refusals contains msg if {
	root := path_roots[input.target.server][input.target.local]
	some arg in path_arguments
	path := input.target.arguments[arg]
	not inside(path, root)
	msg := sprintf("%s: %s %v is outside %s", [input.target.name, arg, path, root])
}

refusals contains msg if {
	path_roots[input.target.server][input.target.local]
	some path in input.target.arguments.paths
	not inside(path, path_roots[input.target.server][input.target.local])
	msg := sprintf("%s: path %v is outside %s", [input.target.name, path, path_roots[input.target.server][input.target.local]])
}

# A path is inside the root when it is a string under it with no ".." segment.
inside(path, root) if {
	is_string(path)
	startswith(path, root)
	not ".." in split(path, "/")
}

refusals contains msg if {
	arg := sql_tools[input.target.server][input.target.local]
	sql := input.target.arguments[arg]
	not is_string(sql)
	msg := sprintf("%s: %s must be a string", [input.target.name, arg])
}

refusals contains msg if {
	arg := sql_tools[input.target.server][input.target.local]
	regex.match(`(?i)\bdrop\b`, input.target.arguments[arg])
	msg := sprintf("%s: DROP statements are not allowed", [input.target.name])
}
