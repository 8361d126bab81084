"""A real Triton Inference Server (PyTriton bundles tritonserver) serving the models the KServe v2 tests use.

    python triton_models.py --http-port P --grpc-port G --metrics-port M

Models (KServe v2 over HTTP on P):
  add     FP32 a[-1], b[-1] -> sum[-1] = a + b            (infer with JSON or binary tensors)
  echo    BYTES text_input[1] -> text_output[1]           (generate; infer)
  stream  BYTES text_input[1] -> text_output[1], decoupled (generate_stream): one response per word of the input,
          "repeat N D" sends N words D ms apart, "fail" raises before answering, "break N" raises after N words.
  tally   BYTES text_input[1] -> text_output[1] (generate): stateful by the request's `sequence_id` parameter (what
          Triton makes of a generate body's `sequence_id`: a request parameter, not a correlation id): answers every
          text of that sequence so far, joined by spaces; `sequence_start` begins it afresh, `sequence_end` forgets
          it. Without a sequence_id it answers the text alone.
Prints "READY" on stdout once every model is loaded (the test still waits on /v2/models/<m>/ready). SIGTERM ends it
cleanly (sys.exit(0): PyTriton removes its workspace).
"""
import argparse
import signal
import sys
import time

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


@batch
def add(a, b):
    return {"sum": (a + b).astype(np.float32)}


def echo(requests):
    out = []
    for r in requests:
        text = r["text_input"]
        out.append({"text_output": np.array([bytes(t) for t in text.reshape(-1)], dtype=np.object_)})
    return out


TALLIES = {}


def tally(requests):
    out = []
    for r in requests:
        params = r.parameters or {}
        text = bytes(r["text_input"].reshape(-1)[0]).decode("utf-8")
        key = params.get("sequence_id")
        if key is None:
            answer = text
        else:
            if params.get("sequence_start"):
                TALLIES.pop(key, None)
            seen = TALLIES.setdefault(key, [])
            seen.append(text)
            answer = " ".join(seen)
            if params.get("sequence_end"):
                TALLIES.pop(key, None)
        out.append({"text_output": np.array([answer.encode("utf-8")], dtype=np.object_)})
    return out


def words(text: str):
    parts = text.split()
    if parts[:1] == ["repeat"] and len(parts) == 3:
        n, delay = int(parts[1]), int(parts[2]) / 1000.0
        for i in range(n):
            if i > 0:
                time.sleep(delay)
            yield f"w{i}"
        return
    if parts[:1] == ["fail"]:
        raise ValueError("the stream model was asked to fail")
    if parts[:1] == ["break"] and len(parts) == 2:
        for i in range(int(parts[1])):
            yield f"w{i}"
        raise ValueError("the stream model broke mid-stream")
    for p in parts:
        yield p


def stream(requests):
    for r in requests:
        text = bytes(r["text_input"].reshape(-1)[0]).decode("utf-8")
        for w in words(text):
            yield [{"text_output": np.array([w.encode("utf-8")], dtype=np.object_)}]


def port_args():
    """The ports the test helper (test/helpers/triton.ts) gives every Triton it starts."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--grpc-port", type=int, required=True)
    ap.add_argument("--metrics-port", type=int, required=True)
    return ap.parse_args()


def main():
    args = port_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = TritonConfig(http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port, log_verbose=0)
    text_in = [Tensor(name="text_input", dtype=bytes, shape=(1,))]
    text_out = [Tensor(name="text_output", dtype=bytes, shape=(1,))]
    with Triton(config=config) as triton:
        triton.bind(
            model_name="add",
            infer_func=add,
            inputs=[Tensor(name="a", dtype=np.float32, shape=(-1,)), Tensor(name="b", dtype=np.float32, shape=(-1,))],
            outputs=[Tensor(name="sum", dtype=np.float32, shape=(-1,))],
            config=ModelConfig(max_batch_size=8),
        )
        triton.bind(model_name="echo", infer_func=echo, inputs=text_in, outputs=text_out, config=ModelConfig(batching=False))
        triton.bind(model_name="tally", infer_func=tally, inputs=text_in, outputs=text_out, config=ModelConfig(batching=False))
        triton.bind(model_name="stream", infer_func=stream, inputs=text_in, outputs=text_out, config=ModelConfig(batching=False, decoupled=True))
        print("READY", flush=True)
        triton.serve()


if __name__ == "__main__":
    main()
