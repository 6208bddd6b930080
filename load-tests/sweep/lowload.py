#!/usr/bin/env python3
"""Where a lone client's time goes: one closed-loop client (c=1, max batch 1, wait 0) per model
of a grid file, its mean latency split by the server's own metrics over the same point into the
encoder, the rest of the server (tokenizing, queue, search, gRPC handling) and what lies outside
the server's request timer (transport and the client's gRPC stack). Means throughout: the
metrics are sums and counts.

    python3 load-tests/sweep/lowload.py load-tests/sweep/cpu-ratios.json --out DIR [--seconds 15]

Writes DIR/lowload.json and prints one line per model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep import Server, delta, loadtest, scrape  # noqa: E402


def mean_ms(after: dict, before: dict, metric: str) -> float:
    count = delta(after, before, metric + "_count")
    return 1e3 * delta(after, before, metric + "_sum") / count if count else float("nan")


def run(a: argparse.Namespace) -> None:
    grid = json.loads(a.grid.read_text())
    a.out.mkdir(parents=True, exist_ok=True)
    grid["_tmp"] = str(a.out)
    rows = []
    for model in grid["models"]:
        srv = Server(grid, model, 1, 0, False, a.out / "lowload-serve.log")
        try:
            srv.wait_ready(grid)
            loadtest(grid, srv.grpc, ["-c", "1", "-z", f"{grid.get('warmup_s', 2)}s"])
            before = scrape(srv.metrics_url)
            s = loadtest(grid, srv.grpc, ["-c", "1", "-z", f"{a.seconds}s"]) or {}
            after = scrape(srv.metrics_url)
        finally:
            srv.stop()
        request = mean_ms(after, before, "xling_request_duration_seconds")
        encode = mean_ms(after, before, "xling_encode_duration_seconds")
        client = s.get("mean_ms", float("nan"))
        row = {
            "model": model["name"], "ok": s.get("ok"), "errors": s.get("errors"),
            "client_mean_ms": client, "server_request_mean_ms": request, "encode_mean_ms": encode,
            "tokenize_mean_ms": mean_ms(after, before, "xling_tokenize_duration_seconds"),
            "search_mean_ms": mean_ms(after, before, "xling_search_duration_seconds"),
            "queue_wait_mean_ms": mean_ms(after, before, "xling_queue_wait_seconds"),
            "server_rest_ms": request - encode, "outside_server_ms": client - request,
            "overhead_ms": client - encode,
        }  # fmt: skip
        rows.append(row)
        print(f"{row['model']}: client mean {client:.2f} ms = encoder {encode:.2f} + rest of server "
              f"{row['server_rest_ms']:.2f} + outside the server {row['outside_server_ms']:.2f}; "
              f"overhead {row['overhead_ms']:.2f} ms ({row['ok']} OK, {row['errors']} errors)",
              flush=True)  # fmt: skip
    (a.out / "lowload.json").write_text(json.dumps({"grid": str(a.grid), "seconds": a.seconds,
                                                    "points": rows}, indent=2) + "\n")  # fmt: skip
    (a.out / "summary.json").unlink(missing_ok=True)  # the last load point's, scratch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("grid", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seconds", type=int, default=15)
    run(ap.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
