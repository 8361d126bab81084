# Tollgate's policy: the two entrypoints the gateway evaluates (compiled to WASM, see ../README.md).
#
#   data.tollgate.decision  once per call:  {"allow": bool, "reason": string, "obligations": {...}}
#   data.tollgate.visible   once per list:  the names in input.targets the caller may see
#
# Default deny: a call is allowed only when a grant (grants.rego) permits it and no rule (arguments.rego,
# models.rego) refuses it. What a caller may not call, it does not see in lists either.
package tollgate

import data.tollgate.arguments
import data.tollgate.grants
import data.tollgate.models

default allow := false

allow if {
	permitted
	count(refusals) == 0
}

# Session housekeeping is open to every caller that has a grant (the lists it returns are filtered).
# Both MCP eras: initialize/streams of the session era, server/discover and subscriptions/listen of 2026-07-28;
# mcp/response is a client's answer to a server-to-client request (sampling, elicitation) of its own session.
housekeeping := {
	"initialize", "ping", "logging/setLevel", "mcp/stream", "mcp/delete", "mcp/legacy-stream", "mcp/response",
	"server/discover", "subscriptions/listen",
	"tools/list", "prompts/list", "resources/list", "resources/templates/list",
	# OpenAI-compatible model lists (filtered by `visible` like MCP lists).
	"models.list",
	# KServe v2 server health and metadata (no model named; each model's metadata, readiness and inference need its grant).
	"server.live", "server.ready", "server.metadata",
}

permitted if {
	grants.known
	input.operation in housekeeping
}

permitted if {
	grants.known
	startswith(input.operation, "notifications/")
}

# A2A: the agent itself (its card, ListTasks, the extended card) and tasks (GetTask, CancelTask, SubscribeToTask,
# push configs) are open to callers that may use some skill of that agent; the gateway lets a caller reach only the
# tasks it created. Messages name a skill: they need a grant for it (`grants.may_use`).
permitted if {
	input.protocol == "a2a"
	input.target.kind in {"server", "task"}
	grants.reaches_agent(input.target.server)
}

# A2A agent listings (GET /a2a) are open to callers with a grant; the list shows only what they may use.
permitted if {
	grants.known
	input.protocol == "a2a"
	input.operation == "ListAgents"
}

# Anything that names a target (a tool call, a prompt, a resource, a model...) needs a grant for that target.
permitted if grants.may_use(input.target)

# Refusals: reasons this particular call may not go ahead, whatever the grants say.
refusals contains msg if some msg in arguments.refusals

refusals contains msg if some msg in models.refusals

# The reason shown to the caller when the call is denied.
reason := "" if {
	allow
} else := concat("; ", sort(refusals)) if {
	count(refusals) > 0
} else := sprintf("%s has no grant", [caller]) if {
	not grants.known
} else := sprintf("%s may not use %s %s", [caller, input.target.kind, input.target.name]) if {
	not permitted
	input.target.name
} else := sprintf("%s may not call %s", [caller, input.operation])

# An anonymous call (a route with auth.anonymous) has the principal {"id": "anonymous", "issuer": "anonymous", ...};
# null only reaches a policy evaluated without the identity guard.
caller := "an anonymous caller" if {
	input.principal.issuer == "anonymous"
} else := "an anonymous caller" if {
	input.principal == null
} else := input.principal.id

# Obligations other guards honour: the limits guard applies rate_class and cost_multiplier, the audit log erases
# the argument paths in redact.
obligations["rate_class"] := grants.rate_class

obligations["cost_multiplier"] := models.cost_multiplier

obligations["redact"] := sort(redactions) if count(redactions) > 0

# Arguments whose names say they hold secrets are kept out of the audit log (JSON pointers into the arguments).
# Plain string tests, not a regex: this runs on every call.
redactions contains sprintf("/%s", [escaped]) if {
	some name, _ in input.target.arguments
	secret_name(name)
	escaped := replace(replace(name, "~", "~0"), "/", "~1")
}

secret_words := {"password", "passwd", "secret", "token", "apikey", "api_key", "api-key", "credential", "credentials", "private_key"}

secret_name(name) if lower(name) in secret_words

secret_name(name) if {
	lowered := lower(name)
	some word in secret_words
	endswith(lowered, word)
	substring(lowered, (count(lowered) - count(word)) - 1, 1) in {"_", "-", ".", "/"}
}

decision := {"allow": allow, "reason": reason, "obligations": obligations}

# One evaluation per list, whatever its length: every item the caller may use (arguments aside) is visible; a
# model off the allow-list (models.rego) is hidden even from callers granted every model.
# input.targets groups the items by server: {"everything": {"echo": "everything__echo", ...}} (local name ->
# the name the caller sees), and input.kind says what they are (tool, prompt, resource...).
visible contains name if {
	some server, items in input.targets
	some local, name in items
	grants.listed(input.kind, server, local)
	not models.hidden(input.kind, name)
}
