"""The Python gRPC client of xling, generated from proto/xling/v1/retrieval.proto with
grpcio-tools' protoc when first imported by a process (nothing generated is committed).

    sys.path.insert(0, str(REPO / "scripts/pylib"))
    from xling_client import pb2, pb2_grpc      # messages, and pb2_grpc.RetrievalStub

Needs grpcio and grpcio-tools (the ops venv has both; for peer.py, see load-tests/README.md).
"""

from __future__ import annotations

import atexit
import importlib
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO = REPO / "proto/xling/v1/retrieval.proto"


def _generate():
    from grpc_tools import protoc  # noqa: PLC0415 - imported only to generate

    out = Path(tempfile.mkdtemp(prefix="xling-grpc-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    args = ["protoc", f"-I{REPO / 'proto'}", f"--python_out={out}", f"--grpc_python_out={out}",
            str(PROTO)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    sys.path.insert(0, str(out))
    return (importlib.import_module("xling.v1.retrieval_pb2"),
            importlib.import_module("xling.v1.retrieval_pb2_grpc"))


pb2, pb2_grpc = _generate()
