"""infra/prometheus and infra/grafana: promtool accepts the scrape config; the dashboard queries only
metrics the code exports (the live /metrics scrape is checked in tests/test_serve_endpoint.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.timeout(60)

INFRA = REPO / "infra"
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "le", "status", "deployment", "run", "term", "replica"}


def exported_metric_names() -> set[str]:
    from crossnet_dist.distributed.telemetry import _GAUGES
    from crossnet_dist.serving import metrics

    names = {"ray_crossnet_train_loss"} | {f"ray_{name}" for name, _ in _GAUGES.values()}
    for name in (metrics.REQUESTS, metrics.IN_FLIGHT, metrics.MODEL_LOAD):
        names.add(name)
    for histogram in (metrics.LATENCY, metrics.BATCH_SIZE, metrics.FORWARD):
        names |= {f"{histogram}_bucket", f"{histogram}_sum", f"{histogram}_count"}
    return names


def test_promtool_accepts_the_scrape_config():
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make setup` installs the Debian package prometheus"
    config = INFRA / "prometheus" / "prometheus.yml"
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    text = config.read_text()
    assert "prom_metrics_service_discovery.json" in text and "127.0.0.1:8000" in text


def test_dashboard_queries_name_exported_metrics():
    dashboard = json.loads((INFRA / "grafana" / "crossnet-dashboard.json").read_text())
    exported = exported_metric_names()
    ray_serve_builtin = "ray_serve_deployment_processing_latency_ms_bucket"
    import ray.serve._private.replica as replica_source

    assert "serve_deployment_processing_latency_ms" in open(replica_source.__file__).read()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    used = set()
    for expr in exprs:
        expr = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', "", expr)  # drop selectors, strings, ranges
        used |= {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if w not in PROMQL_WORDS}
    unknown = used - exported - {ray_serve_builtin}
    assert not unknown, f"dashboard queries metrics nobody exports: {sorted(unknown)}"
    assert any(name.startswith("ray_crossnet_train") for name in used)
    assert any(name.startswith("crossnet_serve") for name in used)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_dashboard_resolves_its_data_source_when_provisioned_from_file():
    import yaml

    dashboard = json.loads((REPO / "infra" / "grafana" / "crossnet-dashboard.json").read_text())
    assert "__inputs" not in dashboard  # import-time inputs are not substituted by file provisioning
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {"${DS_PROMETHEUS}"}
    provider = yaml.safe_load((REPO / "infra" / "grafana" / "provisioning" / "crossnet-dashboards.yaml").read_text())
    assert provider["apiVersion"] == 1 and provider["providers"][0]["type"] == "file"


def test_the_data_loader_counters_are_exported_gauges():
    from crossnet_dist.data.stats import DataStats
    from crossnet_dist.distributed.telemetry import _GAUGES

    counters = set(DataStats().as_metrics("data/")) - {"data/bytes_read"}
    assert counters <= set(_GAUGES)  # the worker's data/* metrics go out as ray_crossnet_data_*
    assert {_GAUGES[k][0] for k in counters} == {"crossnet_data_images_read", "crossnet_data_images_skipped",
                                                 "crossnet_data_storage_retries"}
