package tollgate_test

import data.tollgate

dev := {"id": "spiffe://dev.tollgate.local/me", "trust_domain": "dev.tollgate.local", "path": "/me", "segments": ["me"]}

support := {"id": "spiffe://example.org/agents/support", "trust_domain": "example.org", "path": "/agents/support", "segments": ["agents", "support"]}

# Same path as the support agent, another trust domain: no grant.
stranger := {"id": "spiffe://evil.example/agents/support", "trust_domain": "evil.example", "path": "/agents/support", "segments": ["agents", "support"]}

tool(server, local, args) := {"kind": "tool", "name": concat("__", [server, local]), "server": server, "local": local, "arguments": args}

call(principal, target) := {"principal": principal, "protocol": "mcp", "operation": "tools/call", "target": target}

test_default_deny_without_principal if {
	d := tollgate.decision with input as {"principal": null, "protocol": "mcp", "operation": "tools/call", "target": tool("everything", "echo", {})}
	d.allow == false
	d.reason == "an anonymous caller has no grant"
}

# The principal the identity guard gives a call without credentials on a route with auth.anonymous.
anonymous := {"id": "anonymous", "issuer": "anonymous", "trust_domain": "", "path": "", "segments": [], "claims": {}}

test_default_deny_anonymous if {
	d := tollgate.decision with input as call(anonymous, tool("everything", "echo", {}))
	d.allow == false
	d.reason == "an anonymous caller has no grant"
}

test_default_deny_other_trust_domain if {
	d := tollgate.decision with input as call(stranger, tool("everything", "echo", {}))
	d.allow == false
	d.reason == "spiffe://evil.example/agents/support has no grant"
}

test_default_deny_unknown_operation if {
	d := tollgate.decision with input as {"principal": support, "protocol": "mcp", "operation": "sampling/createMessage", "target": null}
	d.allow == false
	d.reason == "spiffe://example.org/agents/support may not call sampling/createMessage"
}

test_dev_may_call_every_tool if {
	tollgate.decision.allow with input as call(dev, tool("everything", "get-env", {}))
	tollgate.decision.allow with input as call(dev, tool("everything", "echo", {"message": "hi"}))
}

test_grants_cover_whole_path_segments if {
	below := {"id": "spiffe://example.org/agents/support/eu-1", "trust_domain": "example.org", "path": "/agents/support/eu-1", "segments": ["agents", "support", "eu-1"]}
	tollgate.decision.allow with input as call(below, tool("everything", "echo", {}))
	sibling := {"id": "spiffe://example.org/agents/supporter", "trust_domain": "example.org", "path": "/agents/supporter", "segments": ["agents", "supporter"]}
	not tollgate.decision.allow with input as call(sibling, tool("everything", "echo", {}))
}

test_support_may_echo_not_get_env if {
	tollgate.decision.allow with input as call(support, tool("everything", "echo", {"message": "hi"}))
	d := tollgate.decision with input as call(support, tool("everything", "get-env", {}))
	d.allow == false
	d.reason == "spiffe://example.org/agents/support may not use tool everything__get-env"
}

test_grants_use_local_names_on_scoped_endpoints if {
	# /mcp/everything shows the local name; the grant still matches by server and local name.
	target := {"kind": "tool", "name": "echo", "server": "everything", "local": "echo", "arguments": {}}
	tollgate.decision.allow with input as call(support, target)
}

test_housekeeping_open_to_callers_with_a_grant if {
	tollgate.decision.allow with input as {"principal": support, "operation": "initialize", "target": null}
	tollgate.decision.allow with input as {"principal": support, "operation": "tools/list", "target": null}
	tollgate.decision.allow with input as {"principal": support, "operation": "notifications/cancelled", "target": null}
	not tollgate.decision.allow with input as {"principal": stranger, "operation": "initialize", "target": null}
}

test_answers_to_server_requests_open_to_callers_with_a_grant if {
	tollgate.decision.allow with input as {"principal": support, "operation": "mcp/response", "target": null}
	not tollgate.decision.allow with input as {"principal": stranger, "operation": "mcp/response", "target": null}
}

test_stateless_era_housekeeping_open_to_callers_with_a_grant if {
	tollgate.decision.allow with input as {"principal": support, "operation": "server/discover", "target": null}
	tollgate.decision.allow with input as {"principal": support, "operation": "subscriptions/listen", "target": null}
	not tollgate.decision.allow with input as {"principal": stranger, "operation": "server/discover", "target": null}
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

# A secret word at the end of a name counts after any separator, whatever the case; a longer or glued word does not.
test_secret_suffixes_after_every_separator if {
	args := {"x": 1, "db.secret": 1, "a/api-key": 1, "my_api_key": 1, "Private_Key": 1, "user-credentials": 1, "tokens": 1, "xtoken": 1, "_token": 1, "keyword": 1, "monkey": 1}
	d := tollgate.decision with input as call(dev, tool("everything", "echo", args))
	d.obligations.redact == ["/Private_Key", "/_token", "/a~1api-key", "/db.secret", "/my_api_key", "/user-credentials"]
}

test_visible_filters_per_identity if {
	targets := {"everything": {"echo": "everything__echo", "get-env": "everything__get-env"}}
	prompts := {"everything": {"simple-prompt": "everything__simple-prompt", "args-prompt": "everything__args-prompt"}}
	tollgate.visible == {"everything__echo"} with input as {"principal": support, "kind": "tool", "targets": targets}
	tollgate.visible == {"everything__simple-prompt"} with input as {"principal": support, "kind": "prompt", "targets": prompts}
	tollgate.visible == {"everything__echo", "everything__get-env"} with input as {"principal": dev, "kind": "tool", "targets": targets}
	count(tollgate.visible) == 0 with input as {"principal": stranger, "kind": "tool", "targets": targets}
	count(tollgate.visible) == 0 with input as {"principal": null, "kind": "tool", "targets": targets}
}

test_visible_on_a_scoped_endpoint_uses_local_names if {
	# /mcp/everything lists local names; grants still match by server and local name.
	targets := {"everything": {"echo": "echo", "get-env": "get-env"}}
	tollgate.visible == {"echo"} with input as {"principal": support, "kind": "tool", "targets": targets}
}

test_resources_match_across_dots_and_slashes if {
	uri := "demo://resource/static/document/architecture.md"
	targets := {"everything": {uri: concat("__", ["everything", uri])}}
	tollgate.visible == {concat("__", ["everything", uri])} with input as {"principal": dev, "kind": "resource", "targets": targets}
}
