"""Real processes for the live ops test: an xling server and a Prometheus scraping it.

Nothing here is simulated: `xling serve` runs the committed tiny model with ONNX Runtime, and
Prometheus is the Debian package's binary with the repository's rule files. Both listen on
loopback ports picked at run time, and both are stopped by the caller.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts/pylib"))

from xling_process import Process, free_port, tail, wait_for  # noqa: E402

__all__ = ["Process", "Prometheus", "StackError", "finite_values", "free_port", "run_checked",
           "start_prometheus", "wait_for", "xling_env"]
RULE_FILES = [REPO / "deploy/prometheus/rules/recording.yml",
              REPO / "deploy/prometheus/rules/alerts.yml"]


class StackError(Exception):
    """A setup command failed, or Prometheus answered with an error."""


def run_checked(cmd: list[str], log: Path, timeout: float) -> None:
    """Run a setup command; on failure raise with the tail of its output."""
    with log.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                              check=False)
    if proc.returncode != 0:
        raise StackError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail(log)}")


def start_prometheus(workdir: Path, metrics_port: int) -> tuple[Process, str]:
    """Prometheus on loopback scraping xling every second, rules evaluated every second."""
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULE_FILES],
        "scrape_configs": [{
            "job_name": "xling",
            "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
        }],
    }))
    proc = Process.start([
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ], workdir / "prometheus.log")
    url = f"http://127.0.0.1:{port}"
    wait_for("prometheus",
             lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=2).status == 200, 60, proc)
    return proc, url


class Prometheus:
    """The few HTTP API calls the tests need."""

    def __init__(self, url: str):
        self.url = url

    def _get(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as err:
            body = json.load(err)
        if body.get("status") != "success":
            raise StackError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def instant(self, expr: str) -> list[dict]:
        return self._get("/api/v1/query", query=expr)["result"]

    def range(self, expr: str, seconds: int, step: str = "2s") -> list[dict]:
        end = time.time()
        return self._get("/api/v1/query_range", query=expr, start=end - seconds, end=end,
                         step=step)["result"]

    def newest(self, expr: str) -> float:
        """The newest sample time of `expr`'s series (0 when it has none)."""
        return max((float(s["value"][1]) for s in self.instant(f"timestamp({expr})")),
                   default=0.0)

    def rules(self) -> list[dict]:
        return [r for g in self._get("/api/v1/rules")["groups"] for r in g["rules"]]

    def targets_up(self) -> bool:
        active = self._get("/api/v1/targets")["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)


def finite_values(result: list[dict]) -> list[float]:
    """Every finite sample value of an instant or range query result."""
    values = []
    for series in result:
        samples = series.get("values") or [series["value"]]
        values.extend(float(v) for _, v in samples if math.isfinite(float(v)))
    return values


def xling_env() -> dict:
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    return env
