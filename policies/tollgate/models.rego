# Models: an allow-list with a cap on max_tokens (and a cost multiplier the limits guard applies).
package tollgate.models

allowed := {
	"llama-3.1-8b-instruct": {"max_tokens": 4096, "cost_multiplier": 1},
	"qwen2.5-32b-instruct": {"max_tokens": 2048, "cost_multiplier": 4},
	# Triton's quick-start image classifier (routes/kserve.yaml): no tokens, so no cap applies.
	"densenet_onnx": {"max_tokens": 0, "cost_multiplier": 1},
}

refusals contains msg if {
	input.target.kind == "model"
	not allowed[input.target.name]
	msg := sprintf("model %s is not on the allow-list", [input.target.name])
}

refusals contains msg if {
	input.target.kind == "model"
	cap := allowed[input.target.name].max_tokens
	# max_output_tokens: the Responses API's name for it.
	some arg in {"max_tokens", "max_completion_tokens", "max_output_tokens"}
	asked := input.target.arguments[arg]
	not within(asked, cap)
	msg := sprintf("%s %v exceeds the cap of %d for model %s", [arg, asked, cap, input.target.name])
}

within(asked, cap) if {
	is_number(asked)
	asked <= cap
}

cost_multiplier := allowed[input.target.name].cost_multiplier if input.target.kind == "model"

# A model not on the allow-list is left out of model lists (a caller never sees what it may not call).
hidden(kind, name) if {
	kind == "model"
	not allowed[name]
}
