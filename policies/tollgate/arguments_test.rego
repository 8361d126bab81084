package tollgate.arguments_test

import data.tollgate

ops := {"id": "spiffe://example.org/agents/ops", "trust_domain": "example.org", "path": "/agents/ops", "segments": ["agents", "ops"]}

run(server, local, args) := d if {
	d := tollgate.decision with input as {
		"principal": ops,
		"protocol": "mcp",
		"operation": "tools/call",
		"target": {"kind": "tool", "name": concat("__", [server, local]), "server": server, "local": local, "arguments": args},
	}
}

test_read_inside_root_allowed if {
	run("files", "read_file", {"path": "/srv/shared/report.txt"}).allow
}

test_read_outside_root_refused if {
	d := run("files", "read_file", {"path": "/etc/passwd"})
	d.allow == false
	d.reason == "files__read_file: path /etc/passwd is outside /srv/shared/"
}

test_dot_dot_escape_refused if {
	not run("files", "read_file", {"path": "/srv/shared/../../etc/passwd"}).allow
}

test_root_prefix_is_not_enough if {
	# "/srv/shared-secrets" starts with "/srv/shared" but not with the root "/srv/shared/".
	not run("files", "read_file", {"path": "/srv/shared-secrets/key"}).allow
}

test_non_string_path_refused if {
	not run("files", "read_file", {"path": ["/srv/shared/a", "/etc/passwd"]}).allow
}

test_paths_array_checked_item_by_item if {
	run("files", "list_directory", {"path": "/srv/shared/", "paths": ["/srv/shared/a"]}).allow
	not run("files", "list_directory", {"path": "/srv/shared/", "paths": ["/srv/shared/a", "/home"]}).allow
}

test_select_allowed if {
	run("db", "query", {"sql": "SELECT * FROM drops WHERE id = 1"}).allow
}

test_drop_refused_in_any_case if {
	d := run("db", "query", {"sql": "select 1; DrOp TABLE users"})
	d.allow == false
	d.reason == "db__query: DROP statements are not allowed"
	not run("db", "query", {"sql": "DROP/**/TABLE users"}).allow
}

test_sql_must_be_string if {
	not run("db", "query", {"sql": {"text": "DROP TABLE users"}}).allow
}

test_write_not_granted_to_ops if {
	d := run("files", "write_file", {"path": "/srv/shared/a"})
	d.allow == false
	d.reason == "spiffe://example.org/agents/ops may not use tool files__write_file"
}
