# Who may use what, by SPIFFE ID.
#
# A grant applies to the workload whose SPIFFE ID is its spiffe_id, and to those below it, segment by segment:
# "spiffe://example.org/agents/support" covers ".../agents/support" and ".../agents/support/eu-1", not
# ".../agents/supporter". A spiffe_id ending in "/" covers a whole trust domain. Several grants may apply;
# together they allow the union of their targets, and the first one (in list order) that names a rate_class
# gives the call its rate-limit class.
#
# A2A skills are named "<agent>/<skill id>" ("<agent>/*" is a message that names no skill, so only a grant of the
# whole agent, "<agent>/*" or "*", covers it).
#
# Targets are named "<server>/<name as the server knows it>" (the tool "echo" of the backend "everything" is
# "everything/echo", whatever the gateway calls it in a federated list); models by their model name. A pattern is
# an exact name, or a prefix ending in "*" ("everything/*", "files/read_*", "*").
package tollgate.grants

grants := [
	{
		# Local development: every identity of the embedded dev trust domain, e.g. the one that
		# `npx tollgate svid mint --spiffe-id spiffe://dev.tollgate.local/me` issues, may use everything.
		"spiffe_id": "spiffe://dev.tollgate.local/",
		"tools": ["*"],
		"prompts": ["*"],
		"resources": ["*"],
		"models": ["*"],
		"skills": ["*"],
		"rate_class": "dev",
	},
	{
		# A support agent: a few harmless tools of the demo server (no get-env, no URL fetching), one model.
		"spiffe_id": "spiffe://example.org/agents/support",
		"tools": ["everything/echo", "everything/get-sum", "everything/get-tiny-image"],
		"prompts": ["everything/simple-prompt"],
		"models": ["llama-3.1-8b-instruct"],
		"rate_class": "standard",
	},
	{
		# An ops agent: files under the shared root (see arguments.rego) and SQL without DROP.
		"spiffe_id": "spiffe://example.org/agents/ops",
		"tools": ["files/read_file", "files/list_directory", "db/query"],
		"resources": ["files/*"],
		"rate_class": "standard",
	},
]

kinds := {"tool": "tools", "prompt": "prompts", "resource": "resources", "model": "models", "skill": "skills"}

# The grants that apply to the caller.
applicable contains grant if {
	some grant in grants
	covers(grant.spiffe_id)
}

covers(id) if input.principal.id == id

covers(id) if {
	endswith(id, "/")
	startswith(input.principal.id, id)
}

covers(id) if startswith(input.principal.id, concat("", [id, "/"]))

# The caller has at least one grant (callers without any may not even open a session).
known if count(applicable) > 0

# may_use(target): some applicable grant lists a pattern matching the target. The caller's patterns are gathered
# once per evaluation (exact names in a set, prefixes apart), so a 500-item list costs one lookup per item.
may_use(target) if allowed(kinds[target.kind], name(target))

# listed(kind, server, local): may_use for an item of a list, which names its items by server and local name.
listed(kind, server, local) if allowed(kinds[kind], list_name(kind, server, local))

list_name(kind, server, local) := local if {
	kind == "model"
} else := concat("/", [server, local])

allowed(kind, id) if id in exact[kind]

allowed(kind, id) if {
	some prefix in prefixes[kind]
	startswith(id, prefix)
}

exact[kind] contains pattern if {
	some grant in applicable
	some kind, patterns in grant
	is_array(patterns)
	some pattern in patterns
	not endswith(pattern, "*")
}

prefixes[kind] contains trim_suffix(pattern, "*") if {
	some grant in applicable
	some kind, patterns in grant
	is_array(patterns)
	some pattern in patterns
	endswith(pattern, "*")
}

name(target) := target.name if {
	target.kind == "model"
} else := concat("/", [target.server, target.local])

# The rate-limit class of the first applicable grant that sets one (list specific grants first).
rate_class := classes[0] if {
	classes := [grant.rate_class | some grant in grants; covers(grant.spiffe_id); grant.rate_class]
	count(classes) > 0
}

# reaches_agent(agent): the caller may use some skill of the A2A agent (its card, its task lists, its tasks).
reaches_agent(agent) if allowed("skills", concat("/", [agent, "*"]))

reaches_agent(agent) if {
	some pattern in exact.skills
	startswith(pattern, concat("", [agent, "/"]))
}
