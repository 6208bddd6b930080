"""A short, bounded gRPC load against a running xling, mixing every outcome the dashboard shows.

Phases: (1) every method once or a few times, plus invalid requests; (2) single queries with
deadlines shorter than the batcher's max wait (expired) and calls cancelled while queued
(cancelled); (3) an overload burst of large SearchBatch calls against a small queue
(rejections), with more tiny deadlines and cancellations; (4) steady Search traffic so that
rates are non-zero when Prometheus is queried. Deadline and cancel probes use SearchBatch only,
so the client's counts of Search, Embed and Info are exact and can be compared with the
server's counters.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[2]

QUERIES = [
    "Where is the capital of France?",
    "Wann wurde die Berliner Mauer gebaut?",
    "¿Cuál es el río más largo del mundo?",
    "Quelle est la population de Paris ?",
    "长城有多长？",
    "ما هي عاصمة مصر؟",
    "Сколько лет Москве?",
    "東京タワーの高さは？",
    "How do vaccines train the immune system?",
    "Qual è la montagna più alta d'Europa?",
]


def load_stubs(out_dir: Path):
    """Generate Python stubs for proto/xling/v1/retrieval.proto into `out_dir` and import them."""
    from grpc_tools import protoc  # noqa: PLC0415 - only needed when the live test runs

    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{REPO / 'proto'}", f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}", str(REPO / "proto/xling/v1/retrieval.proto")]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {args}")
    sys.path.insert(0, str(out_dir))
    pb2 = importlib.import_module("xling.v1.retrieval_pb2")
    pb2_grpc = importlib.import_module("xling.v1.retrieval_pb2_grpc")
    return pb2, pb2_grpc


class Load:
    """Runs the phases and counts outcomes per (method, gRPC code name) as the client saw them."""

    def __init__(self, target: str, pb2, pb2_grpc):
        self.pb2 = pb2
        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", 16 << 20)])
        self.stub = pb2_grpc.RetrievalStub(self.channel)
        self.outcomes: Counter = Counter()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.channel.close()

    def _count(self, method: str, code: grpc.StatusCode) -> None:
        with self._lock:
            self.outcomes[(method, code.name)] += 1

    def _call(self, method: str, request, timeout: float = 30.0):
        try:
            response = getattr(self.stub, method)(request, timeout=timeout)
        except grpc.RpcError as err:
            self._count(method, err.code())
            return None
        self._count(method, grpc.StatusCode.OK)
        return response

    def basics(self) -> None:
        pb2 = self.pb2
        for _ in range(3):
            self._call("Info", pb2.InfoRequest())
        for mode in (pb2.EMBED_MODE_QUERY, pb2.EMBED_MODE_PASSAGE):
            for i in range(3):
                self._call("Embed", pb2.EmbedRequest(texts=QUERIES[i:i + 2], mode=mode))
        for i, query in enumerate(QUERIES):
            self._call("Search", pb2.SearchRequest(query=query, top_k=5 + i))
        for i in range(3):
            self._call("SearchBatch", pb2.SearchBatchRequest(
                queries=[pb2.SearchRequest(query=q) for q in QUERIES[i:i + 4]]))
        # Bad input: must be INVALID_ARGUMENT, counted by the server under that code.
        for bad in ("", "   "):
            self._call("Search", pb2.SearchRequest(query=bad))
        self._call("Embed", pb2.EmbedRequest(texts=[]))

    def _big_batch(self, size: int, timeout: float) -> None:
        queries = [self.pb2.SearchRequest(query=QUERIES[i % len(QUERIES)] + f" {i}")
                   for i in range(size)]
        self._call("SearchBatch", self.pb2.SearchBatchRequest(queries=queries), timeout)

    def _cancelled_batch(self, size: int, after_s: float) -> None:
        queries = [self.pb2.SearchRequest(query=QUERIES[i % len(QUERIES)]) for i in range(size)]
        future = self.stub.SearchBatch.future(self.pb2.SearchBatchRequest(queries=queries),
                                              timeout=30)
        time.sleep(after_s)
        future.cancel()
        try:
            future.result()
            self._count("SearchBatch", grpc.StatusCode.OK)
        except grpc.FutureCancelledError:
            self._count("SearchBatch", grpc.StatusCode.CANCELLED)
        except grpc.RpcError as err:
            self._count("SearchBatch", err.code())

    def idle_probes(self, count: int) -> None:
        """One query at a time on an idle server: its batch waits the full max wait, so a
        deadline shorter than that passes in the queue (expired), and a call cancelled before
        it (cancelled) is dropped unencoded. The test server's max wait is 20 ms."""
        for i in range(count):
            self._big_batch(1, 0.008 + 0.001 * (i % 3))
            self._cancelled_batch(1, 0.004)

    def overload(self, batch_queries: int, rounds: int) -> None:
        """Many large batches at once (queue full), tiny deadlines, and cancellations."""
        with ThreadPoolExecutor(max_workers=24) as pool:
            jobs = []
            for r in range(rounds):
                jobs += [pool.submit(self._big_batch, batch_queries, 30.0) for _ in range(12)]
                jobs += [pool.submit(self._big_batch, 8, 0.001 + 0.002 * (r % 3))
                         for _ in range(6)]
                jobs += [pool.submit(self._cancelled_batch, 16, 0.0005 * (1 + r % 4))
                         for _ in range(6)]
            for job in jobs:
                job.result()

    def steady(self, seconds: float, concurrency: int) -> None:
        stop = time.monotonic() + seconds

        def worker(n: int) -> None:
            i = n
            while time.monotonic() < stop:
                self._call("Search", self.pb2.SearchRequest(query=QUERIES[i % len(QUERIES)]))
                i += concurrency

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for job in [pool.submit(worker, n) for n in range(concurrency)]:
                job.result()


def drive(target: str, stub_dir: Path, batch_queries: int, steady_s: float) -> Counter:
    """All three phases against `target`; returns the client-side outcome counts."""
    pb2, pb2_grpc = load_stubs(stub_dir)
    load = Load(target, pb2, pb2_grpc)
    try:
        load.basics()
        load.idle_probes(8)
        load.overload(batch_queries, rounds=4)
        load.steady(steady_s, concurrency=4)
    finally:
        load.close()
    return load.outcomes


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: load.py HOST:PORT", file=sys.stderr)
        sys.exit(2)
    with tempfile.TemporaryDirectory() as tmp:
        counts = drive(sys.argv[1], Path(tmp), batch_queries=64, steady_s=10)
    for (method, code), n in sorted(counts.items()):
        print(f"{method:12} {code:20} {n}")
