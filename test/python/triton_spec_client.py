"""Drives a KServe v2 endpoint with every read-only, per-model call of NVIDIA's tritonclient (HTTP, and its asyncio
flavour) and prints what each gave as JSON: the value, or the InferenceServerException it raised.

    python triton_spec_client.py <host:port> <bearer token> <model> [<version>]

For `model` (the `add` model of test/python/triton_models.py under the gateway's name for it): server health and
metadata, model readiness, metadata and configuration (with and without the version), infer with JSON and binary
tensors, outputs not named (binary_data_output), classification, request compression (gzip, deflate) and response
compression, async_infer, headers and query parameters, the asyncio client, and the administrative calls
(statistics, repository, trace, logging, shared memory) a gateway does not expose.
"""
import asyncio
import json
import sys

import numpy as np
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException

A = np.array([[1, 2, 3]], dtype=np.float32)
B = np.array([[0.5, 0.25, 0.125]], dtype=np.float32)


def outcome(fn):
    try:
        return {"ok": fn()}
    except InferenceServerException as e:
        return {"status": e.status(), "message": e.message()}


def inputs(module, binary):
    a = module.InferInput("a", [1, 3], "FP32")
    b = module.InferInput("b", [1, 3], "FP32")
    a.set_data_from_numpy(A, binary_data=binary)
    b.set_data_from_numpy(B, binary_data=binary)
    return [a, b]


def result(r, name="sum"):
    return {"sum": r.as_numpy(name).tolist(), "response": r.get_response()}


def main():
    url, token, model = sys.argv[1], sys.argv[2], sys.argv[3]
    version = sys.argv[4] if len(sys.argv) > 4 else "1"
    auth = {"Authorization": f"Bearer {token}"}
    # tritonclient writes into the headers dict it is given (Inference-Header-Content-Length, encodings): fresh each call.
    h = lambda: dict(auth)
    c = httpclient.InferenceServerClient(url=url, concurrency=4)
    out = "sum"
    report = {
        "live": outcome(lambda: c.is_server_live(headers=h())),
        "ready": outcome(lambda: c.is_server_ready(headers=h())),
        "server": outcome(lambda: c.get_server_metadata(headers=h())),
        "model_ready": outcome(lambda: c.is_model_ready(model, headers=h())),
        "model_ready_version": outcome(lambda: c.is_model_ready(model, version, headers=h())),
        "model_ready_missing_version": outcome(lambda: c.is_model_ready(model, "7", headers=h())),
        "metadata": outcome(lambda: c.get_model_metadata(model, headers=h())),
        "metadata_version": outcome(lambda: c.get_model_metadata(model, version, headers=h())),
        "config": outcome(lambda: c.get_model_config(model, headers=h())),
        "config_version": outcome(lambda: c.get_model_config(model, version, headers=h())),
        "config_missing_version": outcome(lambda: c.get_model_config(model, "7", headers=h())),
        "json": outcome(lambda: result(c.infer(model, inputs(httpclient, False), outputs=[httpclient.InferRequestedOutput(out, binary_data=False)], headers=h(), request_id="json"))),
        "binary": outcome(lambda: result(c.infer(model, inputs(httpclient, True), outputs=[httpclient.InferRequestedOutput(out, binary_data=True)], headers=h(), request_id="binary"))),
        # No outputs named: tritonclient asks for every output in binary (parameters.binary_data_output).
        "all_outputs": outcome(lambda: result(c.infer(model, inputs(httpclient, False), headers=h(), request_id="all"))),
        "versioned": outcome(lambda: result(c.infer(model, inputs(httpclient, True), model_version=version, headers=h(), request_id="versioned"))),
        "classification": outcome(lambda: c.infer(model, inputs(httpclient, False), outputs=[httpclient.InferRequestedOutput(out, class_count=2)], headers=h()).as_numpy(out).astype(str).tolist()),
        "custom_parameters": outcome(lambda: result(c.infer(model, inputs(httpclient, False), headers=h(), priority=1, parameters={"my_custom_parameter": 42}, request_id="params"))),
        "headers_and_query": outcome(lambda: result(c.infer(model, inputs(httpclient, True), headers={**h(), "X-Request-Id": "req-42", "X-Custom": "1"}, query_params={"test": "1"}, request_id="query"))),
        "metadata_query": outcome(lambda: c.get_model_metadata(model, headers=h(), query_params={"a": ["1", "2"]})),
    }
    for req in ("gzip", "deflate", None):
        for res in ("gzip", "deflate", None):
            for binary in (True, False):
                key = f"compressed_{req}_{res}_{'binary' if binary else 'json'}"
                report[key] = outcome(
                    lambda: result(
                        c.infer(model, inputs(httpclient, binary), outputs=[httpclient.InferRequestedOutput(out, binary_data=binary)], headers=h(), request_compression_algorithm=req, response_compression_algorithm=res, request_id=key)
                    )
                )
    handles = [c.async_infer(model, inputs(httpclient, i % 2 == 0), headers=h(), request_id=f"async-{i}") for i in range(6)]
    report["async"] = [outcome(lambda: result(hd.get_result())) for hd in handles]
    report["admin"] = {
        "stats_model": outcome(lambda: c.get_inference_statistics(model, headers=h())),
        "stats_model_version": outcome(lambda: c.get_inference_statistics(model, version, headers=h())),
        "stats_all": outcome(lambda: c.get_inference_statistics(headers=h())),
        "repository_index": outcome(lambda: c.get_model_repository_index(headers=h())),
        "load": outcome(lambda: c.load_model(model, headers=h())),
        "unload": outcome(lambda: c.unload_model(model, headers=h())),
        "trace_model": outcome(lambda: c.get_trace_settings(model, headers=h())),
        "trace": outcome(lambda: c.get_trace_settings(headers=h())),
        "log": outcome(lambda: c.get_log_settings(headers=h())),
        "system_shm": outcome(lambda: c.get_system_shared_memory_status(headers=h())),
        "cuda_shm": outcome(lambda: c.get_cuda_shared_memory_status(headers=h())),
    }
    c.close()
    report["aio"] = asyncio.run(aio(url, auth, model, version, out))
    print(json.dumps(report))


async def aio(url, auth, model, version, out):
    async def outcome_async(coro):
        try:
            return {"ok": await coro}
        except InferenceServerException as e:
            return {"status": e.status(), "message": e.message()}

    async with aioclient.InferenceServerClient(url=url) as c:
        async def infer(binary, **kw):
            r = await c.infer(model, inputs(aioclient, binary), outputs=[aioclient.InferRequestedOutput(out, binary_data=binary)], headers=dict(auth), **kw)
            return result(r)

        return {
            "ready": await outcome_async(c.is_model_ready(model, version, headers=dict(auth))),
            "metadata": await outcome_async(c.get_model_metadata(model, headers=dict(auth))),
            "config": await outcome_async(c.get_model_config(model, version, headers=dict(auth))),
            "binary": await outcome_async(infer(True, request_id="aio")),
            "gzip": await outcome_async(infer(True, request_compression_algorithm="gzip", response_compression_algorithm="gzip", request_id="aio-gzip")),
        }


if __name__ == "__main__":
    main()
