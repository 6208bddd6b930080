#!/usr/bin/env python3
"""Batch-size sweep driver: runs `xling serve` per (model, batcher setting) and `xling loadtest`
against it, closed-loop per concurrency and open-loop per rate, and records one CSV row per
point with the client's latencies and the server's own metrics (batch size, queue wait, CPU).

    python3 load-tests/sweep/sweep.py run load-tests/sweep/cpu-reduced.json --out DIR
    python3 load-tests/sweep/sweep.py report DIR          # CSV -> report.md + SVG plots
    python3 load-tests/sweep/sweep.py report DIR --charts-only   # redraw the plots only

Standard library only, so it runs on any machine that has Python 3.9+ and the xling binary
(the GPU machine has no Rust). See load-tests/sweep/README.md for the grid keys.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts/pylib"))

from xling_process import Process, wait_for  # noqa: E402

FIELDS = [
    "model", "mode", "max_batch_size", "max_wait_us", "adaptive", "concurrency", "target_rps",
    "count", "ok", "errors", "rps", "ok_rps", "p50_ms", "p90_ms", "p99_ms", "service_p99_ms",
    "batch_size_mean", "queue_wait_ms_mean", "padded_tokens_per_query", "query_tokens_mean",
    "server_cpu_cores", "client_cpu_cores", "rejected", "expired", "max_wait_end_us", "seconds",
    "encoder_busy", "mean_ms", "refused", "refused_p99_ms", "refused_service_p99_ms",
]  # fmt: skip


def data_file(grid: dict) -> str:
    return expand(grid.get("data_file", "load-tests/data/queries-multilingual.json"))


def expand(p: str) -> str:
    return os.path.expanduser(os.path.expandvars(p))


def scrape(url: str) -> dict[str, float]:
    """Prometheus text -> {metric name: value summed over label sets}."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        try:
            out[name] = out.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return out


def delta(after: dict, before: dict, name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def ratio(num: float, den: float) -> float | str:
    return num / den if den > 0 else ""


class Server:
    """One `xling serve` process; ready once a Search answers OK (metrics come up before the
    model has loaded, and the server answers UNAVAILABLE until then). `extra` flags (and the
    grid's `server_args`) go last, so they win."""

    def __init__(self, grid: dict, model: dict, mbs: int, wait_us: int, adaptive: bool, log: Path,
                 extra: list[str] | None = None):  # fmt: skip
        g = grid
        self.grpc = f"127.0.0.1:{g.get('grpc_port', 50151)}"
        self.metrics_url = f"http://127.0.0.1:{g.get('metrics_port', 9564)}/metrics"
        args = [
            expand(g["binary"]), "serve", "--model", expand(model["model"]),
            "--index", expand(model["index"]), "--grpc-addr", self.grpc,
            "--metrics-addr", self.metrics_url.split("/")[2], "--device", g.get("device", "cpu"),
            "--intra-threads", str(g.get("intra_threads", 0)), "--max-batch-size", str(mbs),
            "--max-wait-us", str(wait_us), "--queue-capacity", str(g.get("queue_capacity", 4096)),
            "--adaptive-wait", "true" if adaptive else "false", "--log-format", "json",
        ]  # fmt: skip
        # clap refuses a repeated flag: a later "--flag value" replaces an earlier one, in the
        # defaults above or earlier in the extras (a variant built on another, e.g. "$new
        # --max-queue-wait-ms 0").
        for token in [*g.get("server_args", []), *(extra or [])]:
            if token.startswith("--") and token in args:
                i = args.index(token)
                del args[i:i + 2]
            args.append(token)
        self.process = Process.start(args, log, append=True)

    def wait_ready(self, grid: dict, timeout_s: float = 180) -> None:
        def answers() -> bool:
            s = loadtest(grid, self.grpc, ["-c", "1", "-n", "1"], quiet=True)
            return bool(s and s.get("ok", 0) >= 1)

        wait_for("xling serve", answers, timeout_s, self.process, interval=1)

    def stop(self) -> None:
        self.process.stop(40)


def loadtest(grid: dict, host: str, extra: list[str], quiet: bool = False) -> dict | None:
    summary = Path(grid["_tmp"]) / "summary.json"
    summary.unlink(missing_ok=True)
    args = [
        expand(grid["binary"]), "loadtest", "--insecure", "--call", "xling.v1.Retrieval.Search",
        "-D", data_file(grid),
        "-t", grid.get("timeout", "30s"), "--duration-stop", "wait", "-O", "json",
        "-o", os.devnull, "--summary-json", str(summary), *extra, host,
    ]  # fmt: skip
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0 and not quiet:
        print(f"loadtest failed ({r.returncode}): {r.stderr.strip()[-500:]}", file=sys.stderr)
    if not summary.exists():
        return None
    return json.loads(summary.read_text())


def measure(grid: dict, srv: Server, extra: list[str]) -> dict:
    """One load point: loadtest CPU from the children's rusage, server CPU and batching from
    the server's own counters, both as deltas over the point."""
    before = scrape(srv.metrics_url)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    s = loadtest(grid, srv.grpc, extra) or {}
    secs = time.time() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = scrape(srv.metrics_url)
    batches = delta(after, before, "xling_batch_size_count")
    queries = delta(after, before, "xling_batch_size_sum")
    client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {
        **{k: s.get(k, "") for k in ("count", "ok", "errors", "rps", "ok_rps", "p50_ms",
                                     "p90_ms", "p99_ms", "service_p99_ms", "mean_ms", "refused",
                                     "refused_p99_ms", "refused_service_p99_ms")},  # fmt: skip
        "batch_size_mean": ratio(queries, batches),
        "queue_wait_ms_mean": ratio(
            1000 * delta(after, before, "xling_queue_wait_seconds_sum"),
            delta(after, before, "xling_queue_wait_seconds_count"),
        ),
        "padded_tokens_per_query": ratio(delta(after, before, "xling_batch_tokens_sum"), queries),
        "query_tokens_mean": ratio(
            delta(after, before, "xling_query_tokens_sum"),
            delta(after, before, "xling_query_tokens_count"),
        ),
        "server_cpu_cores": delta(after, before, "process_cpu_seconds_total") / secs,
        "client_cpu_cores": client_cpu / secs,
        "rejected": delta(after, before, "xling_rejected_total"),
        "expired": delta(after, before, "xling_expired_total"),
        "max_wait_end_us": 1e6 * after.get("xling_batch_max_wait_seconds", 0.0),
        "seconds": round(secs, 2),
        # Share of the point's wall time the encoder was running: what the pipeline around it
        # (gRPC, tokenizing, queue, search) leaves of the encoder at saturation.
        "encoder_busy": delta(after, before, "xling_encode_duration_seconds_sum") / secs,
    }


def settings(grid: dict) -> list[tuple[int, int, bool]]:
    """(max batch size, max wait us, adaptive): the fixed grid, then adaptive per batch size.
    With max batch size 1 there is nothing to wait for, so only wait 0 is run."""
    out = []
    for mbs in grid["max_batch_size"]:
        for w in grid["max_wait_us"]:
            if mbs == 1 and w != grid["max_wait_us"][0]:
                continue
            out.append((mbs, w, False))
    for mbs in grid.get("adaptive_max_batch_size", []):
        out.append((mbs, grid.get("adaptive_start_wait_us", 2000), True))
    return out


def encoder_bench(grid: dict, model: dict, path: Path, args: list[str]) -> dict:
    """`xling bench encoder` on the grid's model, device and query file, with `args` (batch
    sizes, lengths, iterations); its JSON report, also left at `path`."""
    cmd = [
        expand(grid["binary"]), "bench", "encoder", "--model", expand(model["model"]),
        "--device", grid.get("device", "cpu"), "--intra-threads", str(grid.get("intra_threads", 0)),
        "--queries", data_file(grid), *args, "--json", str(path),
    ]  # fmt: skip
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(path.read_text())


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = ""
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem_gib, 1), "gpu": gpu,
            "host": platform.node(), "date_utc": dt.datetime.now(dt.timezone.utc).isoformat()}  # fmt: skip


def run(grid_path: Path, out: Path) -> None:
    grid = json.loads(grid_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    grid["_tmp"] = str(out)
    meta = {"grid": {k: v for k, v in grid.items() if not k.startswith("_")},
            "grid_file": str(grid_path), "machine": machine(), "argv": sys.argv,
            "loadavg_start": os.getloadavg()}  # fmt: skip
    csv_path = out / "points.csv"
    with open(csv_path, "w", newline="") as f:
        csv.DictWriter(f, FIELDS).writeheader()
    dur = f"{grid.get('duration_s', 10)}s"
    for model in grid["models"]:
        peak = None
        for mbs, wait_us, adaptive in settings(grid):
            tag = f"{model['name']} mbs={mbs} wait={wait_us}us{' adaptive' if adaptive else ''}"
            print(f"== {tag}", flush=True)
            srv = Server(grid, model, mbs, wait_us, adaptive, out / f"serve-{model['name']}.log")
            try:
                srv.wait_ready(grid)
                warm = measure(grid, srv, ["-c", "16", "-z", f"{grid.get('warmup_s', 2)}s"])
                if peak is None:
                    # Raw ceiling at the length the server actually pads queries to.
                    seq = max(4, round(float(warm["padded_tokens_per_query"] or 16)))
                    bench = encoder_bench(grid, model, out / f"encoder-{model['name']}.json", [
                        "--batch-sizes", ",".join(map(str, grid["encoder_batch_sizes"])),
                        "--seq-lens", str(seq), "--iters", str(grid.get("encoder_iters", 10)),
                    ])  # fmt: skip
                    peak = max(r["sequences_per_s"] for r in bench["rows"])
                    meta.setdefault("encoder", {})[model["name"]] = {"seq": seq, **bench}
                loads = [("closed", c, "") for c in grid["concurrency"]]
                loads += [("open", grid.get("open_loop_workers", 256), max(1, round(f * peak)))
                          for f in grid.get("rate_fractions", [])]  # fmt: skip
                for mode, c, rate in loads:
                    extra = ["-c", str(c), "-z", dur] + (["-r", str(rate)] if rate else [])
                    row = measure(grid, srv, extra)
                    row.update(model=model["name"], mode=mode, max_batch_size=mbs,
                               max_wait_us=wait_us, adaptive=adaptive, concurrency=c,
                               target_rps=rate)  # fmt: skip
                    print(f"   {mode} c={c} rate={rate}: ok_rps={row['ok_rps']} "
                          f"p50={row['p50_ms']} p99={row['p99_ms']} batch={row['batch_size_mean']}",
                          flush=True)  # fmt: skip
                    with open(csv_path, "a", newline="") as f:
                        csv.DictWriter(f, FIELDS).writerow(row)
            finally:
                srv.stop()
    meta["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat()
    meta["loadavg_end"] = os.getloadavg()
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "summary.json").unlink(missing_ok=True)
    write_report(out)


def write_report(out: Path, charts_only: bool = False) -> None:
    # Imported late: report.py is a sibling module, not a package, and edits to it made while
    # a long run is going are picked up at its end.
    import report

    if charts_only:
        report.redraw(out)
    else:
        report.write(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a grid file, then write the report")
    r.add_argument("grid", type=Path)
    r.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("report", help="(re)write report.md, ratios.json and plots from a run folder")
    p.add_argument("dir", type=Path)
    p.add_argument("--charts-only", action="store_true",
                   help="redraw only the charts (a committed run keeps the report.md and ratios.json it was reported with)")  # fmt: skip
    a = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the running `xling serve` is stopped by its `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if a.cmd == "run":
            run(a.grid, a.out)
        else:
            write_report(a.dir, a.charts_only)
    except (OSError, KeyError, ValueError, RuntimeError, subprocess.CalledProcessError) as e:
        print(f"error: {e!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
