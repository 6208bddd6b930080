"""The live check: a real xling under load, scraped by a real Prometheus.

Every dashboard panel query, every recording rule and every prometheus-adapter query must
return data; every alert expression must parse and evaluate, and Prometheus must report every
rule healthy. The server's request counters must equal what the client saw.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import grpc
import pytest
import yaml
from conftest import REPO
from grpc_health.v1 import health_pb2, health_pb2_grpc
from load import drive
from stack import (
    Process,
    Prometheus,
    StackError,
    finite_values,
    free_port,
    run_checked,
    start_prometheus,
    wait_for,
    xling_env,
)

DASHBOARD = json.loads((REPO / "deploy/grafana/xling.json").read_text())
RULES = [r for f in ("recording", "alerts") for g in yaml.safe_load(
    (REPO / f"deploy/prometheus/rules/{f}.yml").read_text())["groups"] for r in g["rules"]]
ADAPTER = yaml.safe_load(
    (REPO / "deploy/k8s/prometheus-adapter/values.yaml").read_text())["rules"]["custom"]
# Grafana's variables as a person would pick them: job "xling", all instances.
GRAFANA_VARS = {"job": "xling", "instance": ".*", "__rate_interval": "1m", "__interval": "2s",
                "__range": "2m"}
# Small queue and batches so that a burst of 64-query batches overflows the queue (rejections);
# a 250 ms max wait, longer than load.py's 100 ms probe deadline, so that a lone probe's
# deadline always passes while it is queued (expired), and a probe cancelled once admitted is
# always still queued (cancelled).
SERVE_FLAGS = ["--max-batch-size", "8", "--max-wait-us", "250000", "--queue-capacity", "16",
               "--max-batch-queries", "64", "--intra-threads", "1", "--drain-timeout-s", "10"]
DRAIN_TIMEOUT_S = 10
# The pod's grace period (deploy/k8s/base/deployment.yaml): what a shutdown must fit in.
GRACE_S = yaml.safe_load((REPO / "deploy/k8s/base/deployment.yaml").read_text())[
    "spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
HEALTH_SERVICE = "xling.v1.Retrieval"


def serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=HEALTH_SERVICE), timeout=2)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def live(request, tmp_path_factory):
    """xling serving the tiny model, Prometheus scraping it, and the load already driven."""
    workdir: Path = tmp_path_factory.mktemp("live")
    binary = request.config.getoption("--xling-binary")
    model = request.config.getoption("--xling-model")
    corpus = request.config.getoption("--xling-corpus")
    for path, what in ((binary, "xling binary (cargo build --release -p xling)"),
                       (model, "test model"), (corpus, "demo corpus")):
        if not Path(path).exists():
            pytest.fail(f"{what} missing: {path}")

    index = workdir / "index"
    run_checked([binary, "index", "build", "--corpus", corpus, "--model", model,
                 "--out", str(index)], workdir / "index-build.log", timeout=300)

    grpc_port, metrics_port = free_port(), free_port()
    target = f"127.0.0.1:{grpc_port}"
    xling = Process.start([binary, "serve", "--model", model, "--index", str(index),
                           "--grpc-addr", target, "--metrics-addr", f"127.0.0.1:{metrics_port}",
                           *SERVE_FLAGS], workdir / "xling.log", env=xling_env())
    prometheus = None
    try:
        wait_for("xling health SERVING", lambda: serving(target), 120, xling)
        prometheus, url = start_prometheus(workdir, metrics_port)
        prom = Prometheus(url)
        wait_for("scrape target up", prom.targets_up, 30, prometheus)
        outcomes = drive(target, f"http://127.0.0.1:{metrics_port}", batch_queries=64,
                         steady_s=8)
        # Every answer the client saw was counted before it was sent: a scrape that starts
        # after the load sees all of it, and a rule evaluation after that scrape uses it.
        ended = time.time()
        wait_for("a scrape after the load",
                 lambda: prom.newest('up{job="xling"}') > ended, 60, prometheus)
        scraped = prom.newest('up{job="xling"}')
        wait_for("the recording rules evaluated after that scrape",
                 lambda: prom.newest("job:xling_requests_errors:ratio_rate5m") > scraped,
                 60, prometheus)
        yield {"prom": prom, "outcomes": outcomes, "xling": xling, "workdir": workdir,
               "binary": binary, "model": model, "index": index}
    finally:
        xling.stop(DRAIN_TIMEOUT_S + 10)
        if prometheus is not None:
            prometheus.stop(20)


def substitute(expr: str, variables: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise AssertionError(f"unknown variable ${name} in {expr}")
        return variables[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def panel_targets() -> list:
    return [pytest.param(panel, target, id=f"{panel['title']}-{target['refId']}")
            for panel in DASHBOARD["panels"] for target in panel["targets"]]


@pytest.mark.parametrize(("panel", "target"), panel_targets())
def test_dashboard_query_returns_data(live, panel, target):
    expr = substitute(target["expr"], GRAFANA_VARS)
    prom = live["prom"]
    result = prom.instant(expr) if target.get("instant") else prom.range(expr, 120)
    assert finite_values(result), f"panel {panel['title']!r} shows no data: {expr}"


@pytest.mark.parametrize("rule", [r for r in RULES if "record" in r], ids=lambda r: r["record"])
def test_recording_rule_returns_data(live, rule):
    prom = live["prom"]
    assert finite_values(prom.instant(rule["expr"])), f"{rule['record']}: no data"
    # And Prometheus itself has been recording it from the rule file.
    assert finite_values(prom.range(rule["record"], 60)), f"{rule['record']} never recorded"


@pytest.mark.parametrize("rule", [r for r in RULES if "alert" in r], ids=lambda r: r["alert"])
def test_alert_expression_evaluates(live, rule):
    # Healthy may mean empty; a parse or evaluation error raises StackError here.
    live["prom"].instant(rule["expr"])


def test_every_rule_healthy_in_prometheus(live):
    loaded = {r["name"]: r for r in live["prom"].rules()}
    for rule in RULES:
        name = rule.get("record") or rule["alert"]
        assert name in loaded, f"{name} not loaded by Prometheus"
        assert loaded[name]["health"] == "ok", f"{name}: {loaded[name].get('lastError')}"


@pytest.mark.parametrize("rule", ADAPTER, ids=lambda r: r["name"]["as"])
def test_adapter_query_returns_data(live, rule):
    series = rule["seriesQuery"].split("{")[0]
    expr = (rule["metricsQuery"].replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", 'job="xling"').replace("<<.GroupBy>>", "instance"))
    assert finite_values(live["prom"].instant(expr)), f"HPA metric {rule['name']['as']}: no data"


def test_load_reached_every_outcome(live):
    seen = {code for (_, code) in live["outcomes"]}
    assert {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED",
            "CANCELLED"} <= seen, live["outcomes"]
    for counter in ("xling_rejected_total", "xling_expired_total", "xling_cancelled_total"):
        values = finite_values(live["prom"].instant(f'sum({counter}{{job="xling"}})'))
        assert values and values[0] > 0, f"the load produced no {counter}"


def test_server_counts_match_client(live):
    """xling_requests_total for Search, Embed and Info equals the client's own tally."""
    result = live["prom"].instant(
        'sum by (method, code) (xling_requests_total{job="xling",method=~"Search|Embed|Info"})')
    server = {(s["metric"]["method"], s["metric"]["code"]): int(float(s["value"][1]))
              for s in result}
    client = {k: v for k, v in live["outcomes"].items() if k[0] in ("Search", "Embed", "Info")}
    assert server == client


def dockerfile_cmd(dockerfile: str) -> list[str]:
    cmd = re.search(r"^CMD (\[.*\])$", (REPO / dockerfile).read_text(), re.M)
    return json.loads(cmd.group(1))


# How the shipped artifacts start xling: the ConfigMap files (Kubernetes args) and the images'
# CMD. Paths and device are swapped for this machine's (no /opt/xling, no GPU); flags win.
SERVE_VARIANTS = {
    "k8s-base": ["serve", "--config", "deploy/k8s/base/xling.toml"],
    "k8s-gpu": ["serve", "--config", "deploy/k8s/overlays/gpu/xling.toml"],
    "image-cpu": dockerfile_cmd("docker/Dockerfile"),
    "image-cuda": dockerfile_cmd("docker/Dockerfile.cuda"),
}


@pytest.mark.parametrize("variant", SERVE_VARIANTS)
def test_shipped_command_serves(live, variant):
    """The ConfigMap files and the images' CMD are accepted by the real binary and serve."""
    swap = {"/opt/xling/model": live["model"], "/opt/xling/index": str(live["index"]),
            "cuda": "cpu"}
    args = [swap.get(a, str(REPO / a) if a.endswith(".toml") else a)
            for a in SERVE_VARIANTS[variant]]
    overrides = {"--model": live["model"], "--index": str(live["index"]), "--device": "cpu"}
    for flag, value in overrides.items():
        if flag not in args:
            args += [flag, value]
    target = f"127.0.0.1:{free_port()}"
    server = Process.start([live["binary"], *args, "--grpc-addr", target,
                            "--metrics-addr", f"127.0.0.1:{free_port()}"],
                           live["workdir"] / f"serve-{variant}.log", env=xling_env())
    try:
        wait_for(f"xling as {variant}", lambda: serving(target), 120, server)
    finally:
        assert server.stop(DRAIN_TIMEOUT_S + 10) == 0


def test_graceful_shutdown(live):
    """SIGTERM drains and exits 0 without reaching the drain timeout, within the pod's grace
    period (the Kubernetes grace period math)."""
    code = live["xling"].stop(GRACE_S)
    if code is None:
        raise StackError(f"xling ignored SIGTERM for {GRACE_S}s (the pod's grace period)")
    assert code == 0, f"xling exited {code} on SIGTERM"
    log = live["xling"].log.read_text()
    assert "draining admitted requests" in log, "no drain started"
    assert "drain timeout passed" not in log, "the drain of an idle server timed out"
