"""Drives a Tollgate OpenAI-compatible route with the official Python `openai` client (run by
test/e2e/openai-python.test.ts from ~/.cache/tollgate/venv-openai). Prints one JSON object with what it saw.

Usage: openai_client.py BASE_URL API_KEY MODEL
"""
import json
import sys

import openai

base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
out = {"version": openai.__version__}

chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "words 5"}], max_tokens=20)
out["chat"] = {"content": chat.choices[0].message.content, "usage": chat.usage.model_dump(exclude_none=True), "model": chat.model}

deltas, usage_chunks, models = [], 0, set()
for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": "words 4"}], stream=True):
    models.add(chunk.model)
    if chunk.usage is not None:
        usage_chunks += 1
    if chunk.choices:
        deltas.append(chunk.choices[0].delta.content or "")
out["stream"] = {"text": "".join(deltas), "usage_chunks": usage_chunks, "models": sorted(models)}

usage = None
for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": "words 3"}], stream=True, stream_options={"include_usage": True}):
    if chunk.usage is not None:
        usage = chunk.usage.model_dump(exclude_none=True)
out["stream_usage"] = usage

text = ""
for chunk in client.completions.create(model=model, prompt="words 2", max_tokens=5, stream=True):
    text += chunk.choices[0].text if chunk.choices else ""
out["completions_stream"] = text

emb = client.embeddings.create(model=model, input="hello there")
out["embedding"] = emb.data[0].embedding
out["embedding_model"] = emb.model

out["models"] = [m.id for m in client.models.list().data]

resp = client.responses.create(model=model, input="words 3", max_output_tokens=20)
out["responses"] = {"text": resp.output_text, "model": resp.model, "usage": [resp.usage.input_tokens, resp.usage.output_tokens], "status": resp.status}
types, text = [], ""
for event in client.responses.create(model=model, input=[{"role": "user", "content": "words 2"}], stream=True):
    types.append(event.type)
    if event.type == "response.output_text.delta":
        text += event.delta
    if event.type == "response.completed":
        out["responses_stream_usage"] = [event.response.usage.input_tokens, event.response.usage.output_tokens]
        out["responses_stream_model"] = event.response.model
out["responses_stream"] = {"text": text, "first": types[0], "last": types[-1]}


def failure(call):
    try:
        call()
    except openai.APIStatusError as e:
        return {"class": type(e).__name__, "status": e.status_code, "code": e.code, "type": e.type, "message": e.message}
    except openai.APIError as e:
        return {"class": type(e).__name__, "code": e.code, "type": e.type, "message": e.message}
    return None


out["unknown_model"] = failure(lambda: client.chat.completions.create(model="mistral-7b-instruct", messages=[{"role": "user", "content": "x"}]))
out["denied_model"] = failure(lambda: client.chat.completions.create(model="gpt-unknown", messages=[{"role": "user", "content": "x"}]))
out["bad_key"] = failure(lambda: openai.OpenAI(base_url=base_url, api_key="nope", max_retries=0).models.list())


broken_text = []


def broken():
    for chunk in client.chat.completions.create(model=model, messages=[{"role": "user", "content": "words 9 break 3"}], stream=True):
        broken_text.append((chunk.choices[0].delta.content or "") if chunk.choices else "")


out["broken"] = failure(broken)
out["broken_text"] = "".join(broken_text)

broken_events = []


def broken_response():
    for event in client.responses.create(model=model, input="words 9 break 2", stream=True):
        broken_events.append(event.type if event.type != "error" else {"type": "error", "code": event.code, "message": event.message})


out["broken_response"] = failure(broken_response)
out["broken_response_events"] = broken_events[-2:]
print(json.dumps(out))
