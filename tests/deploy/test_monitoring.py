"""Prometheus and Grafana of the compose stack: every worker scraped, every panel on a real metric."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import REGISTRY, CollectorRegistry

import mugpos.storage.metrics
import mugpos.streams.metrics  # noqa: F401
from tests.deploy.support import COMPOSE_FILE, ROLES, ROOT, load_compose_yaml

PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
SUFFIXES = ("_total", "_created", "_bucket", "_sum", "_count")


def exposed_names(registry: CollectorRegistry) -> set[str]:
    names: set[str] = set()
    for metric in registry.collect():
        names.add(metric.name)
        names.update(metric.name + s for s in SUFFIXES)
    return names


def known_metrics() -> set[str]:
    """mugpos_* from streams.metrics, faust_* as the worker's Prometheus sensor names them, and up."""
    mugpos = {n for n in exposed_names(REGISTRY) if n.startswith("mugpos_")}
    faust_registry = CollectorRegistry()
    FaustMetrics.create(faust_registry, "faust")  # the prefix streams/web.py gives the sensors
    return mugpos | exposed_names(faust_registry) | {"up"}


def expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for v in node.values() for e in expressions(v)]
    if isinstance(node, list):
        return [e for v in node for e in expressions(v)]
    return []


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS.read_text())


def test_prometheus_scrapes_every_role_on_the_web_port(prometheus: dict[str, Any]) -> None:
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "mugpos"]
    assert job["metrics_path"] == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sorted(sd["names"]) == sorted(ROLES) and sd["port"] == 6066 and sd["type"] == "A"
    relabel = job["relabel_configs"][0]
    assert relabel == {"source_labels": ["__meta_dns_name"], "target_label": "role"}


def test_every_scraped_name_is_a_compose_service_or_alias(prometheus: dict[str, Any]) -> None:
    compose = load_compose_yaml(COMPOSE_FILE)
    names = set(compose["services"])
    for service in compose["services"].values():
        for net in (service.get("networks") or {}).values():
            names.update((net or {}).get("aliases", []))
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "mugpos"]
    assert set(job["dns_sd_configs"][0]["names"]) <= names
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    compose = load_compose_yaml(COMPOSE_FILE)
    mounts = compose["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro" in mounts
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "mugpos.yml").read_text())
    assert providers["apiVersion"] == 1
    assert providers["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (GRAFANA / "dashboards" / Path(home).name).is_file()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"panel {panel['title']} is wider than the grid"
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, f"panel {panel['title']} overlaps another"
        cells |= mine
        if panel["type"] != "row":
            assert panel["targets"], f"panel {panel['title']} has no query"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert variables["datasource"]["current"]["value"] == source["datasources"][0]["uid"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_use_metrics_the_workers_export(path: Path) -> None:
    exprs = expressions(json.loads(path.read_text()))
    assert exprs
    known = known_metrics()
    used = {name for e in exprs for name in re.findall(r"\b((?:mugpos|faust)_[a-z0-9_]+|up)\b", e)}
    unknown = sorted(used - known)
    assert not unknown, f"{path.name} queries metrics no worker exports: {unknown}"
    exported = {n for n in known if n.startswith("mugpos_")}
    core = {
        "mugpos_images_processed_total",
        "mugpos_dead_letters_total",
        "mugpos_stage_duration_seconds_bucket",
        "mugpos_end_to_end_latency_seconds_bucket",
        "mugpos_cache_requests_total",
        "mugpos_model_info",
    }
    assert core <= used & exported, f"{path.name} misses {sorted(core - used)}"
