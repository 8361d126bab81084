# Who may use what, by SPIFFE ID.
#
# A grant applies to every workload whose SPIFFE ID is in a trusted trust domain and whose path starts with the
# grant's path, segment by segment: "/dev" covers spiffe://tollgate.dev/dev and spiffe://tollgate.dev/dev/alice,
# not spiffe://tollgate.dev/devops. Several grants may apply; together they allow the union of their targets.
#
# Targets are named "<server>/<name as the server knows it>" (a tool "echo" of the backend "everything" is
# "everything/echo", whatever the gateway calls it in a federated list); models by their model name. A pattern is
# an exact name, or a prefix ending in "*" ("everything/*", "files/read_*", "*").
package tollgate.grants

trust_domains := {"tollgate.dev"}

grants := [
	{
		# Developers' own agents (tollgate svid mint --spiffe-id spiffe://tollgate.dev/dev/<name>): everything.
		"path": "/dev",
		"tools": ["*"],
		"prompts": ["*"],
		"resources": ["*"],
		"models": ["*"],
		"rate_class": "dev",
	},
	{
		# The support agent: a few harmless tools of the demo server; no get-env, no URL fetching.
		"path": "/agents/support",
		"tools": ["everything/echo", "everything/get-sum", "everything/get-tiny-image"],
		"prompts": ["everything/simple-prompt"],
		"models": ["llama-3.1-8b-instruct"],
		"rate_class": "standard",
	},
	{
		# The ops agent: files under the shared root (see arguments.rego) and read-only SQL.
		"path": "/agents/ops",
		"tools": ["files/read_file", "files/list_directory", "db/query"],
		"resources": ["files/*"],
		"rate_class": "standard",
	},
]

kinds := {"tool": "tools", "prompt": "prompts", "resource": "resources", "model": "models", "skill": "skills"}

trusted if input.principal.trust_domain in trust_domains

# The grants that apply to the caller.
applicable contains grant if {
	trusted
	some grant in grants
	covers(grant.path, input.principal.segments)
}

covers("/", _)

covers(path, segments) if {
	prefix := split(trim_prefix(path, "/"), "/")
	array.slice(segments, 0, count(prefix)) == prefix
}

# may_use(target): some applicable grant lists a pattern matching the target.
may_use(target) if {
	some grant in applicable
	some pattern in grant[kinds[target.kind]]
	matches(pattern, name(target))
}

matches(pattern, name) if pattern == name

matches(pattern, name) if {
	endswith(pattern, "*")
	startswith(name, trim_suffix(pattern, "*"))
}

name(target) := target.name if target.kind == "model"

name(target) := concat("/", [target.server, target.local]) if target.kind != "model"

# The rate-limit class of the most specific applicable grant that sets one.
rate_classes := {grant.path: grant.rate_class | some grant in applicable; grant.rate_class}

rate_class := class if {
	longest := max({count(path) | some path, _ in rate_classes})
	some path, class in rate_classes
	count(path) == longest
}
