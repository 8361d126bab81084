"""Drives a KServe v2 endpoint with NVIDIA's tritonclient (HTTP) and prints what it got as JSON.

    python triton_client.py <host:port> <bearer token> [<denied token> [<another name of add>]]

Server and model health and metadata, `add` with binary tensors (request and output) and with JSON tensors,
(with a second token) the error a refused call raises, and (with a name the gateway's route gives `add`) that
model's metadata and a binary infer under that name.
"""
import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def infer(client, headers, binary, model="add"):
    a = httpclient.InferInput("a", [1, 3], "FP32")
    b = httpclient.InferInput("b", [1, 3], "FP32")
    a.set_data_from_numpy(np.array([[1, 2, 3]], dtype=np.float32), binary_data=binary)
    b.set_data_from_numpy(np.array([[0.5, 0.25, 0.125]], dtype=np.float32), binary_data=binary)
    out = httpclient.InferRequestedOutput("sum", binary_data=binary)
    # tritonclient writes Inference-Header-Content-Length into the headers dict it is given: a fresh one per call.
    result = client.infer(model, [a, b], outputs=[out], headers=dict(headers), request_id=f"tc-{binary}")
    return {"sum": result.as_numpy("sum").tolist(), "response": result.get_response()}


def main():
    url, token = sys.argv[1], sys.argv[2]
    headers = {"Authorization": f"Bearer {token}"}
    client = httpclient.InferenceServerClient(url=url)
    report = {
        "live": client.is_server_live(headers=headers),
        "ready": client.is_server_ready(headers=headers),
        "server": client.get_server_metadata(headers=headers),
        "model_ready": client.is_model_ready("add", headers=headers),
        "model": client.get_model_metadata("add", headers=headers),
        "binary": infer(client, headers, True),
        "json": infer(client, headers, False),
    }
    if len(sys.argv) > 3:
        try:
            infer(client, {"Authorization": f"Bearer {sys.argv[3]}"}, True)
            report["denied"] = None
        except InferenceServerException as e:
            report["denied"] = {"status": e.status(), "message": e.message()}
    if len(sys.argv) > 4:
        renamed = sys.argv[4]
        report["renamed"] = {"model": client.get_model_metadata(renamed, headers=headers), "binary": infer(client, headers, True, renamed)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
