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

# Session housekeeping is open to every caller of a trusted domain (the lists it returns are filtered).
housekeeping := {
	"initialize", "ping", "logging/setLevel", "mcp/stream", "mcp/delete",
	"tools/list", "prompts/list", "resources/list", "resources/templates/list",
}

permitted if {
	grants.trusted
	input.operation in housekeeping
}

permitted if {
	grants.trusted
	startswith(input.operation, "notifications/")
}

# Anything that names a target (a tool call, a prompt, a resource, a model...) needs a grant for that target.
permitted if grants.may_use(input.target)

# Refusals: reasons this particular call may not go ahead, whatever the grants say.
refusals contains msg if some msg in arguments.refusals

refusals contains msg if some msg in models.refusals

# The reason shown to the caller when the call is denied.
default reason := ""

reason := concat("; ", sort(refusals)) if {
	count(refusals) > 0
} else := sprintf("%s is not from a trusted trust domain", [caller]) if {
	not grants.trusted
} else := sprintf("%s may not use %s %s", [caller, input.target.kind, input.target.name]) if {
	not permitted
	input.target.name
} else := sprintf("%s may not call %s", [caller, input.operation]) if {
	not permitted
}

caller := input.principal.id

caller := "an anonymous caller" if input.principal == null

# Obligations other guards honour: the limits guard applies rate_class and cost_multiplier, the audit log erases
# the argument paths in redact.
obligations["rate_class"] := grants.rate_class

obligations["cost_multiplier"] := models.cost_multiplier

obligations["redact"] := sort(redactions) if count(redactions) > 0

# Arguments whose names say they hold secrets are kept out of the audit log (JSON pointers into the arguments).
redactions contains sprintf("/%s", [escaped]) if {
	some name, _ in input.target.arguments
	is_string(name)
	regex.match(`(?i)^(.*[_./-])?(password|passwd|secret|token|access[_-]?token|api[_-]?key|credentials?|private[_-]?key)$`, name)
	escaped := replace(replace(name, "~", "~0"), "/", "~1")
}

decision := {"allow": allow, "reason": reason, "obligations": obligations}

# One evaluation per list: every target the caller may use (arguments aside) is visible.
visible contains target.name if {
	some target in input.targets
	grants.may_use(target)
}
