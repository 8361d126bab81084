package tollgate_a2a_test

import data.tollgate

dev := {"id": "spiffe://dev.tollgate.local/me", "trust_domain": "dev.tollgate.local", "path": "/me", "segments": ["me"]}

asker := {"id": "spiffe://example.org/agents/asker", "trust_domain": "example.org", "path": "/agents/asker", "segments": ["agents", "asker"]}

# Same path as the asker, another trust domain: no grant.
stranger := {"id": "spiffe://evil.example/agents/asker", "trust_domain": "evil.example", "path": "/agents/asker", "segments": ["agents", "asker"]}

fixture_grants := [
	{"spiffe_id": "spiffe://dev.tollgate.local/", "skills": ["*"]},
	{"spiffe_id": "spiffe://example.org/agents/asker", "skills": ["researcher/search"]},
]

skill(agent, id) := {"kind": "skill", "name": id, "server": agent, "local": id, "arguments": {"skill": id, "callee": agent}}

message(principal, target) := {"principal": principal, "protocol": "a2a", "operation": "SendMessage", "target": target}

test_dev_may_ask_any_agent_for_any_skill if {
	tollgate.allow with input as message(dev, skill("researcher", "search")) with data.tollgate.grants.grants as fixture_grants
	tollgate.allow with input as message(dev, skill("writer", "*")) with data.tollgate.grants.grants as fixture_grants
}

# "agent A may ask agent B for skill S" is one grant.
test_granted_skill_only if {
	tollgate.allow with input as message(asker, skill("researcher", "search")) with data.tollgate.grants.grants as fixture_grants
	not tollgate.allow with input as message(asker, skill("researcher", "delete")) with data.tollgate.grants.grants as fixture_grants
	not tollgate.allow with input as message(asker, skill("writer", "search")) with data.tollgate.grants.grants as fixture_grants
}

# A message naming no skill needs the whole agent.
test_no_skill_needs_agent_grant if {
	not tollgate.allow with input as message(asker, skill("researcher", "*")) with data.tollgate.grants.grants as fixture_grants
}

# A skill the agent's card does not list has no server: never granted, not even by "*".
test_unknown_skill_denied if {
	not tollgate.allow with input as message(dev, {"kind": "skill", "name": "ghost", "server": null, "local": "ghost", "arguments": {}}) with data.tollgate.grants.grants as fixture_grants
}

test_tasks_and_card_of_a_reachable_agent if {
	tollgate.allow with input as {"principal": asker, "protocol": "a2a", "operation": "GetTask", "target": {"kind": "task", "name": "t1", "server": "researcher", "local": "t1"}} with data.tollgate.grants.grants as fixture_grants
	tollgate.allow with input as {"principal": asker, "protocol": "a2a", "operation": "GetAgentCard", "target": {"kind": "server", "name": "researcher", "server": "researcher", "local": "researcher"}} with data.tollgate.grants.grants as fixture_grants
	not tollgate.allow with input as {"principal": asker, "protocol": "a2a", "operation": "GetTask", "target": {"kind": "task", "name": "t1", "server": "writer", "local": "t1"}} with data.tollgate.grants.grants as fixture_grants
}

test_other_trust_domain_denied if {
	d := tollgate.decision with input as message(stranger, skill("researcher", "search")) with data.tollgate.grants.grants as fixture_grants
	d.allow == false
	d.reason == "spiffe://evil.example/agents/asker has no grant"
}

test_list_agents_needs_a_grant if {
	tollgate.allow with input as {"principal": asker, "protocol": "a2a", "operation": "ListAgents", "target": null} with data.tollgate.grants.grants as fixture_grants
	not tollgate.allow with input as {"principal": stranger, "protocol": "a2a", "operation": "ListAgents", "target": null} with data.tollgate.grants.grants as fixture_grants
}

test_cards_show_granted_skills if {
	v := tollgate.visible with input as {"principal": asker, "protocol": "a2a", "operation": "GetAgentCard", "kind": "skill", "targets": {"researcher": {"search": "search", "delete": "delete", "*": "*"}}} with data.tollgate.grants.grants as fixture_grants
	v == {"search"}
}
