package tollgate_test

import data.tollgate

dev := {"id": "spiffe://tollgate.dev/dev/alice", "trust_domain": "tollgate.dev", "path": "/dev/alice", "segments": ["dev", "alice"]}

support := {"id": "spiffe://tollgate.dev/agents/support", "trust_domain": "tollgate.dev", "path": "/agents/support", "segments": ["agents", "support"]}

stranger := {"id": "spiffe://evil.example/dev/alice", "trust_domain": "evil.example", "path": "/dev/alice", "segments": ["dev", "alice"]}

tool(server, local, args) := {"kind": "tool", "name": concat("__", [server, local]), "server": server, "local": local, "arguments": args}

call(principal, target) := {"principal": principal, "protocol": "mcp", "operation": "tools/call", "target": target}

test_default_deny_without_principal if {
	d := tollgate.decision with input as {"principal": null, "protocol": "mcp", "operation": "tools/call", "target": tool("everything", "echo", {})}
	d.allow == false
	d.reason == "an anonymous caller is not from a trusted trust domain"
}

test_default_deny_untrusted_domain if {
	d := tollgate.decision with input as call(stranger, tool("everything", "echo", {}))
	d.allow == false
	contains(d.reason, "not from a trusted trust domain")
}

test_default_deny_unknown_operation if {
	d := tollgate.decision with input as {"principal": support, "protocol": "mcp", "operation": "sampling/createMessage", "target": null}
	d.allow == false
	d.reason == "spiffe://tollgate.dev/agents/support may not call sampling/createMessage"
}

test_dev_may_call_every_tool if {
	tollgate.decision.allow with input as call(dev, tool("everything", "get-env", {}))
	tollgate.decision.allow with input as call(dev, tool("everything", "echo", {"message": "hi"}))
}

test_dev_path_is_segment_prefix if {
	devops := {"id": "spiffe://tollgate.dev/devops", "trust_domain": "tollgate.dev", "path": "/devops", "segments": ["devops"]}
	not tollgate.decision.allow with input as call(devops, tool("everything", "echo", {}))
}

test_support_may_echo_not_get_env if {
	tollgate.decision.allow with input as call(support, tool("everything", "echo", {"message": "hi"}))
	d := tollgate.decision with input as call(support, tool("everything", "get-env", {}))
	d.allow == false
	d.reason == "spiffe://tollgate.dev/agents/support may not use tool everything__get-env"
}

test_grants_use_local_names_on_scoped_endpoints if {
	# /mcp/everything shows the local name; the grant still matches by server and local name.
	target := {"kind": "tool", "name": "echo", "server": "everything", "local": "echo", "arguments": {}}
	tollgate.decision.allow with input as call(support, target)
}

test_housekeeping_open_to_trusted_callers if {
	tollgate.decision.allow with input as {"principal": support, "operation": "initialize", "target": null}
	tollgate.decision.allow with input as {"principal": support, "operation": "tools/list", "target": null}
	tollgate.decision.allow with input as {"principal": support, "operation": "notifications/cancelled", "target": null}
	not tollgate.decision.allow with input as {"principal": stranger, "operation": "initialize", "target": null}
}

test_allowed_decision_has_empty_reason_and_rate_class if {
	d := tollgate.decision with input as call(dev, tool("everything", "echo", {}))
	d.reason == ""
	d.obligations == {"rate_class": "dev"}
}

test_secret_arguments_are_redacted if {
	d := tollgate.decision with input as call(dev, tool("everything", "echo", {"message": "x", "api_key": "k", "db/Password": "p", "github_token": "t", "max_tokens": 5}))
	d.obligations.redact == ["/api_key", "/db~1Password", "/github_token"]
}

test_visible_filters_per_identity if {
	targets := [
		{"kind": "tool", "name": "everything__echo", "server": "everything", "local": "echo"},
		{"kind": "tool", "name": "everything__get-env", "server": "everything", "local": "get-env"},
		{"kind": "prompt", "name": "everything__simple-prompt", "server": "everything", "local": "simple-prompt"},
	]
	tollgate.visible == {"everything__echo", "everything__simple-prompt"} with input as {"principal": support, "targets": targets}
	tollgate.visible == {"everything__echo", "everything__get-env", "everything__simple-prompt"} with input as {"principal": dev, "targets": targets}
	count(tollgate.visible) == 0 with input as {"principal": stranger, "targets": targets}
	count(tollgate.visible) == 0 with input as {"principal": null, "targets": targets}
}

test_resources_match_across_dots_and_slashes if {
	target := {"kind": "resource", "name": "everything__demo://resource/static/document/architecture.md", "server": "everything", "local": "demo://resource/static/document/architecture.md"}
	tollgate.visible == {target.name} with input as {"principal": dev, "targets": [target]}
}
