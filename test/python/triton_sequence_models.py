"""A real Triton Inference Server with a stateful model: Triton's sequence batcher, which PyTriton's bind() cannot
configure, so this runs the tritonserver PyTriton bundles directly, on a model repository it writes to a temporary
directory, with the Python backend (and the backend stub for this interpreter) PyTriton ships.

    python triton_sequence_models.py --http-port P --grpc-port G --metrics-port M

Models (KServe v2 over HTTP on P):
  accumulate  BYTES text_input[1] -> text_output[1] (batch dimension first), sequence batching (direct, 8 slots):
              the texts of the request's sequence so far (its correlation id: infer's parameters.sequence_id), joined
              by spaces, then the correlation id as Triton gave it ("a1 a2 |7"). The first request of a sequence must
              carry sequence_start (Triton refuses one that does not); sequence_end forgets it.
SIGTERM stops the server and removes the directory.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile

from triton_models import port_args
from pytriton.utils.distribution import get_libs_path, get_root_module_path, get_stub_path

CONFIG = """
backend: "python"
max_batch_size: 8
input [ { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "text_output" data_type: TYPE_STRING dims: [ 1 ] } ]
sequence_batching {
  max_sequence_idle_microseconds: 60000000
  direct { }
  control_input [
    { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "END" control [ { kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] } ] }
  ]
}
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

MODEL = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.sequences = {}

    def execute(self, requests):
        out = []
        for r in requests:
            corr = r.correlation_id()
            text = pb_utils.get_input_tensor_by_name(r, "text_input").as_numpy().reshape(-1)[0].decode("utf-8")
            if int(pb_utils.get_input_tensor_by_name(r, "START").as_numpy().reshape(-1)[0]):
                self.sequences[corr] = []
            seen = self.sequences.setdefault(corr, [])
            seen.append(text)
            answer = " ".join(seen) + " |" + str(corr)
            if int(pb_utils.get_input_tensor_by_name(r, "END").as_numpy().reshape(-1)[0]):
                self.sequences.pop(corr, None)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("text_output", np.array([answer.encode("utf-8")], dtype=np.object_))]))
        return out
'''


def main():
    args = port_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="tollgate-triton-seq-"))
    server = None

    def stop(*_):
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    dist = get_root_module_path() / "tritonserver"
    backend = work / "backends" / "python"
    backend.mkdir(parents=True)
    for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy(dist / "backends" / "python" / f, backend / f)
    shutil.copy(get_stub_path(f"{sys.version_info[0]}.{sys.version_info[1]}"), backend / "triton_python_backend_stub")
    model = work / "models" / "accumulate"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG)
    (model / "1" / "model.py").write_text(MODEL)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (get_libs_path().as_posix(), env.get("LD_LIBRARY_PATH", "")) if p)
    # The stub runs the model with this interpreter's packages (numpy).
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}:{env.get('PATH', '')}"
    server = subprocess.Popen(
        [
            (dist / "bin" / "tritonserver").as_posix(),
            f"--model-repository={work / 'models'}",
            f"--backend-directory={work / 'backends'}",
            f"--http-port={args.http_port}",
            f"--grpc-port={args.grpc_port}",
            f"--metrics-port={args.metrics_port}",
            "--log-verbose=0",
        ],
        env=env,
    )
    code = server.wait()
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
