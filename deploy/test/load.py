"""A short, bounded gRPC load against a running xling, mixing every outcome the dashboard shows.

Phases: (1) every method once or a few times, plus invalid requests; (2) single queries on an
idle server, each alone in a batch that waits the server's max wait: one with a deadline shorter
than that wait (expired), one cancelled once the server has it queued (cancelled); (3) an
overload burst of large SearchBatch calls against a small queue (rejections), with tiny
deadlines and cancellations; (4) steady Search traffic so that rates are non-zero when
Prometheus is queried. Phases 2 and 3 repeat until xling's own /metrics shows the outcome, so
that a slow machine makes them take longer, never miss. Deadline and cancel probes use
SearchBatch only, so the client's counts of Search, Embed and Info are exact and can be
compared with the server's counters.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts/pylib"))

from xling_client import pb2, pb2_grpc  # noqa: E402

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


# The probes' deadline: shorter than the server's max wait (the live test serves with 250 ms),
# long enough that even a slow client sends the call well before it passes.
PROBE_DEADLINE_S = 0.1
# How long a probe waits for xling to count it; only a server that never does reaches it.
COUNTED_WITHIN_S = 20.0


class Load:
    """Runs the phases and counts outcomes per (method, gRPC code name) as the client saw them."""

    def __init__(self, target: str, metrics_url: str):
        self.pb2 = pb2
        self.metrics_url = metrics_url
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

    def _cancelled_batch(self, size: int, after_s: float = 0.0, admitted: bool = False) -> None:
        """A SearchBatch cancelled after `after_s`, or (`admitted`, on an otherwise idle
        server) once xling runs it: its handler queues the queries in the same step in which
        it counts itself in flight, so the cancel finds them queued."""
        queries = [self.pb2.SearchRequest(query=QUERIES[i % len(QUERIES)]) for i in range(size)]
        future = self.stub.SearchBatch.future(self.pb2.SearchBatchRequest(queries=queries),
                                              timeout=30)
        time.sleep(after_s)
        if admitted and not self._wait_metric("xling_in_flight_requests", lambda n: n >= 1):
            raise RuntimeError(f"xling never ran the call within {COUNTED_WITHIN_S}s")
        future.cancel()
        try:
            future.result()
            self._count("SearchBatch", grpc.StatusCode.OK)
        except grpc.FutureCancelledError:
            self._count("SearchBatch", grpc.StatusCode.CANCELLED)
        except grpc.RpcError as err:
            self._count("SearchBatch", err.code())

    def metric(self, name: str) -> float:
        """The sum of a metric's samples (all label sets) on xling's own /metrics."""
        with urllib.request.urlopen(f"{self.metrics_url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((name + " ", name + "{")))

    def _wait_metric(self, name: str, holds) -> bool:
        """Polls xling's /metrics until `holds(value of name)`; False after COUNTED_WITHIN_S."""
        deadline = time.monotonic() + COUNTED_WITHIN_S
        while not holds(self.metric(name)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def idle_probes(self, count: int) -> None:
        """One query at a time on an idle server: its batch waits the full max wait, so a
        deadline shorter than that passes in the queue (expired), and a call cancelled while
        queued is dropped unencoded (cancelled). Each probe waits until xling has counted it,
        which also empties the queue for the next one."""
        for name, probe in (("xling_expired_total", lambda: self._big_batch(1, PROBE_DEADLINE_S)),
                            ("xling_cancelled_total", lambda: self._cancelled_batch(1, admitted=True))):
            for _ in range(count):
                before = self.metric(name)
                probe()
                if not self._wait_metric(name, lambda now, before=before: now > before):
                    raise RuntimeError(f"{name} did not count a probe within {COUNTED_WITHIN_S}s")

    def overload(self, batch_queries: int, rounds: int) -> None:
        """Many large batches at once (queue full), tiny deadlines, and cancellations; rounds
        repeat (up to 10 times `rounds`) until xling has refused some."""
        rejected = self.metric("xling_rejected_total")
        with ThreadPoolExecutor(max_workers=24) as pool:
            for r in range(10 * rounds):
                if r >= rounds and self.metric("xling_rejected_total") > rejected:
                    return
                jobs = [pool.submit(self._big_batch, batch_queries, 30.0) for _ in range(12)]
                jobs += [pool.submit(self._big_batch, 8, 0.001 + 0.002 * (r % 3))
                         for _ in range(6)]
                jobs += [pool.submit(self._cancelled_batch, 16, 0.0005 * (1 + r % 4))
                         for _ in range(6)]
                for job in jobs:
                    job.result()
        raise RuntimeError(f"{10 * rounds} overload rounds and xling refused nothing")

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


def drive(target: str, metrics_url: str, batch_queries: int, steady_s: float) -> Counter:
    """All phases against `target` (its /metrics at `metrics_url`); returns the client-side
    outcome counts."""
    load = Load(target, metrics_url)
    try:
        load.basics()
        load.idle_probes(4)
        load.overload(batch_queries, rounds=4)
        load.steady(steady_s, concurrency=4)
    finally:
        load.close()
    return load.outcomes


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: load.py HOST:PORT METRICS_URL", file=sys.stderr)
        sys.exit(2)
    counts = drive(sys.argv[1], sys.argv[2], batch_queries=64, steady_s=10)
    for (method, code), n in sorted(counts.items()):
        print(f"{method:12} {code:20} {n}")
