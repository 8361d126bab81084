package tollgate.models_test

import data.tollgate

support := {"id": "spiffe://example.org/agents/support", "trust_domain": "example.org", "path": "/agents/support", "segments": ["agents", "support"]}

dev := {"id": "spiffe://dev.tollgate.local/bob", "trust_domain": "dev.tollgate.local", "path": "/bob", "segments": ["bob"]}

chat(principal, model, args) := d if {
	d := tollgate.decision with input as {
		"principal": principal,
		"protocol": "openai",
		"operation": "chat.completions",
		"target": {"kind": "model", "name": model, "server": "vllm", "local": model, "arguments": args},
	}
}

test_allowed_model_under_cap if {
	d := chat(support, "llama-3.1-8b-instruct", {"max_tokens": 512})
	d.allow
	d.obligations == {"rate_class": "standard", "cost_multiplier": 1}
}

test_max_tokens_over_cap_refused if {
	d := chat(support, "llama-3.1-8b-instruct", {"max_tokens": 8192})
	d.allow == false
	d.reason == "max_tokens 8192 exceeds the cap of 4096 for model llama-3.1-8b-instruct"
	not chat(support, "llama-3.1-8b-instruct", {"max_completion_tokens": 5000}).allow
	not chat(support, "llama-3.1-8b-instruct", {"max_tokens": "lots"}).allow
}

test_responses_max_output_tokens_over_cap_refused if {
	d := tollgate.decision with input as {
		"principal": support,
		"protocol": "openai",
		"operation": "responses",
		"target": {"kind": "model", "name": "llama-3.1-8b-instruct", "server": "vllm", "local": "llama", "arguments": {"max_output_tokens": 5000}},
	}
	d.allow == false
	d.reason == "max_output_tokens 5000 exceeds the cap of 4096 for model llama-3.1-8b-instruct"
}

test_model_not_on_allow_list_refused if {
	d := chat(dev, "gpt-unknown", {})
	d.allow == false
	d.reason == "model gpt-unknown is not on the allow-list"
}

test_grant_needed_even_for_allowed_model if {
	# support is granted llama only; the bigger model is on the allow-list but not granted to it.
	not chat(support, "qwen2.5-32b-instruct", {"max_tokens": 100}).allow
	d := chat(dev, "qwen2.5-32b-instruct", {"max_tokens": 100})
	d.allow
	d.obligations.cost_multiplier == 4
}

listing(principal, targets) := v if {
	v := tollgate.visible with input as {"principal": principal, "protocol": "openai", "operation": "models.list", "kind": "model", "targets": targets}
}

test_model_list_open_to_callers_with_a_grant if {
	tollgate.decision.allow with input as {"principal": support, "protocol": "openai", "operation": "models.list", "target": null}
	not tollgate.decision.allow with input as {"principal": null, "protocol": "openai", "operation": "models.list", "target": null}
}

test_model_list_shows_granted_allowed_models_only if {
	targets := {"vllm": {"llama-3.1-8b-instruct": "llama-3.1-8b-instruct", "qwen2.5-32b-instruct": "qwen2.5-32b-instruct", "gpt-unknown": "gpt-unknown"}}
	# support is granted llama only; dev every model, but an unlisted one stays hidden.
	listing(support, targets) == {"llama-3.1-8b-instruct"}
	listing(dev, targets) == {"llama-3.1-8b-instruct", "qwen2.5-32b-instruct"}
}

test_tokenize_needs_the_model_grant if {
	tollgate.decision.allow with input as {"principal": support, "protocol": "openai", "operation": "tokenize", "target": {"kind": "model", "name": "llama-3.1-8b-instruct", "server": "vllm", "local": "meta-llama/Llama-3.1-8B-Instruct", "arguments": {"model": "llama-3.1-8b-instruct"}}}
	not tollgate.decision.allow with input as {"principal": support, "protocol": "openai", "operation": "tokenize", "target": {"kind": "model", "name": "qwen2.5-32b-instruct", "server": "vllm", "local": "qwen", "arguments": {}}}
}

test_kserve_server_health_and_metadata_open_to_callers_with_a_grant if {
	some op in ["server.live", "server.ready", "server.metadata"]
	tollgate.decision.allow with input as {"principal": support, "protocol": "kserve", "operation": op, "target": null}
	not tollgate.decision.allow with input as {"principal": null, "protocol": "kserve", "operation": op, "target": null}
}

test_kserve_inference_needs_the_model_grant if {
	tollgate.decision.allow with input as {"principal": support, "protocol": "kserve", "operation": "generate", "target": {"kind": "model", "name": "llama-3.1-8b-instruct", "server": "triton", "local": "llama", "arguments": {"text_input_bytes": 5}}}
	not tollgate.decision.allow with input as {"principal": support, "protocol": "kserve", "operation": "infer", "target": {"kind": "model", "name": "qwen2.5-32b-instruct", "server": "triton", "local": "qwen", "arguments": {}}}
}
