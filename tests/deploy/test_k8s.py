"""Kubernetes manifests under deploy/k8s: schema-valid, wired together, least privilege.

Built-in kinds are validated in strict mode (unknown fields fail) against the Kubernetes JSON
schemas shipped by the PyPI package kubernetes-validate; the two custom resources (KEDA
ScaledObject, Prometheus Operator ServiceMonitor) against minimal hand-written shapes
(schemas/README.md says why). Kustomizations are rendered with `kubectl kustomize` when kubectl is
installed, and the rendered objects are checked again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from mugpos.core.settings import SettingsError, load_settings
from mugpos.streams.app import ROLES as APP_ROLES
from mugpos.streams.app import app_id
from tests.deploy.support import (
    K8S,
    K8S_APPLICABLE,
    K8S_VERSIONS,
    ROLES,
    SCHEMAS,
    k8s_manifest_files,
    load_yaml_docs,
    rel,
)

CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.schema.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.schema.json",
}
NAMESPACE = "mugpos"


def validate(doc: dict[str, Any], version: str) -> None:
    """Raise when ``doc`` is not a valid object of its kind (strict: unknown fields fail)."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRD_SCHEMAS:
        schema = json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text())
        jsonschema.validators.validator_for(schema)(schema).validate(doc)
        return
    kubernetes_validate.validate(doc, version, strict=True)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    """The base's resources as the kustomization lists them (without kubectl)."""
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in load_yaml_docs(K8S / "base" / name)]


@pytest.fixture(scope="module")
def keda() -> dict[str, Any]:
    (doc,) = load_yaml_docs(K8S / "components" / "keda" / "scaledobject.yaml")
    return doc


# -- schemas -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", k8s_manifest_files(), ids=rel)
def test_manifest_matches_the_kubernetes_schema(path: Path, version: str) -> None:
    for doc in load_yaml_docs(path):
        try:
            validate(doc, version)
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{rel(path)}: {exc.message} (a custom resource needs a schema in tests/deploy/schemas)")
        except jsonschema.ValidationError as exc:
            where = "/".join(map(str, exc.absolute_path))
            pytest.fail(f"{rel(path)} {doc['kind']}/{doc['metadata']['name']} at {where}: {exc.message}")


def test_strict_validation_rejects_unknown_fields(base: list[dict[str, Any]], keda: dict[str, Any]) -> None:
    deployment = json.loads(json.dumps(by_kind(base, "Deployment")["mugpos-detect"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate(deployment, K8S_VERSIONS[-1])
    scaled = json.loads(json.dumps(keda))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 200  # KEDA metadata values are strings
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled, K8S_VERSIONS[-1])
    scaled = json.loads(json.dumps(keda))
    scaled["spec"]["triggers"][0]["metadata"]["consumer_group"] = "x"
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled, K8S_VERSIONS[-1])


def test_every_manifest_is_used_by_a_kustomization() -> None:
    listed: set[Path] = set()
    for root in (K8S / "base", *sorted((K8S / "components").iterdir())):
        kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
        listed.update((root / name).resolve() for name in kustomization.get("resources", []))
    unused = [
        rel(p) for p in k8s_manifest_files() if p.resolve() not in listed and not p.name.endswith(".example.yaml")
    ]
    assert not unused, f"manifests no kustomization applies: {unused}"
    assert (K8S / "base" / "secret.example.yaml").resolve() not in listed, "the example Secret must never be applied"


# -- rendering with kustomize -----------------------------------------------------------------------


def kustomize(path: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: kustomizations are checked file by file only")
    done = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    assert done.returncode == 0, f"kubectl kustomize {rel(path)} failed:\n{done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.mark.parametrize("path", K8S_APPLICABLE, ids=rel)
def test_kustomization_renders_valid_namespaced_objects(path: Path) -> None:
    docs = kustomize(path)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ConfigMap", "Service", "PodDisruptionBudget", "Role", "ServiceAccount"} <= kinds
    for doc in docs:
        validate(doc, K8S_VERSIONS[-1])
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']}"
    assert "Secret" not in kinds, "secrets are created out of band (secret.example.yaml)"


def test_keda_overlay_takes_the_scaling_away_from_the_control_agent() -> None:
    with_keda = kustomize(K8S / "overlays" / "cluster-keda")
    without = kustomize(K8S / "overlays" / "cluster")
    assert "ScaledObject" in {d["kind"] for d in with_keda}
    assert "ScaledObject" not in {d["kind"] for d in without}
    assert "mugpos-control-scale-detect" in by_kind(without, "RoleBinding")
    assert not by_kind(with_keda, "RoleBinding"), "with KEDA the control agent must not scale detect too"
    assert "ServiceMonitor" in {d["kind"] for d in with_keda} & {d["kind"] for d in without}


# -- workloads ------------------------------------------------------------------------------------


def test_one_deployment_per_role(base: list[dict[str, Any]]) -> None:
    assert set(ROLES) == set(APP_ROLES) - {"all"}, "every worker role runs as its own Deployment"
    deployments = by_kind(base, "Deployment")
    assert set(deployments) == {f"mugpos-{role}" for role in ROLES}
    for role in ROLES:
        spec = deployments[f"mugpos-{role}"]["spec"]
        (container,) = spec["template"]["spec"]["containers"]
        assert container["command"] == ["mugpos", "worker", "--role", role]
        assert container["ports"] == [{"name": "web", "containerPort": 6066, "protocol": "TCP"}]
        probes = {k: container[k]["httpGet"]["path"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
        assert probes == {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
        refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
        assert refs == ["mugpos-config", "mugpos-secrets"]
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/tmp", "/var/lib/mugpos"} <= mounts, "Faust's data dir and temp files need writable mounts"
        expected_image = "mugpos:0.1.0-cuda" if role == "detect" else "mugpos:0.1.0-cpu"
        assert container["image"] == expected_image


def test_detect_requests_one_gpu_and_the_others_none(base: list[dict[str, Any]]) -> None:
    deployments = by_kind(base, "Deployment")
    for role in ROLES:
        (container,) = deployments[f"mugpos-{role}"]["spec"]["template"]["spec"]["containers"]
        resources = container["resources"]
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        if role == "detect":
            assert resources["requests"]["nvidia.com/gpu"] == 1 and resources["limits"]["nvidia.com/gpu"] == 1
            assert env["MUGPOS_DEVICE"] == "cuda"
        else:
            assert "nvidia.com/gpu" not in {**resources.get("requests", {}), **resources.get("limits", {})}
            assert env["MUGPOS_DEVICE"] == "cpu"
    assert by_kind(base, "Deployment")["mugpos-control"]["spec"]["replicas"] == 1


def test_services_and_pdbs_select_the_deployments(base: list[dict[str, Any]]) -> None:
    deployments = by_kind(base, "Deployment")

    def selects(selector: dict[str, str]) -> set[str]:
        return {
            name
            for name, d in deployments.items()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        }

    for name, service in by_kind(base, "Service").items():
        assert selects(service["spec"]["selector"]) == {name}, f"Service {name}"
        assert service["spec"]["ports"][0]["targetPort"] == "web"
    pdbs = by_kind(base, "PodDisruptionBudget")
    assert set(pdbs) == {"mugpos-detect", "mugpos-analyze", "mugpos-sink"}
    assert set(by_kind(base, "Service")) == {f"mugpos-{role}" for role in ROLES}
    for name, pdb in pdbs.items():
        assert selects(pdb["spec"]["selector"]["matchLabels"]) == {name}, f"PDB {name}"
    for d in deployments.values():
        assert d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()


def test_control_may_only_scale_the_detect_deployment(base: list[dict[str, Any]]) -> None:
    roles = by_kind(base, "Role")
    assert not by_kind(base, "ClusterRole") and not by_kind(base, "ClusterRoleBinding")
    (role,) = roles.values()
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "resourceNames": ["mugpos-detect"],
            "verbs": ["get", "update", "patch"],
        }
    ]
    assert "mugpos-detect" in by_kind(base, "Deployment")
    (binding,) = by_kind(base, "RoleBinding").values()
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    control_sa = by_kind(base, "Deployment")["mugpos-control"]["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": control_sa, "namespace": NAMESPACE}]
    for role_name in ("detect", "analyze", "sink"):
        pod = by_kind(base, "Deployment")[f"mugpos-{role_name}"]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] != control_sa and pod["automountServiceAccountToken"] is False


# -- settings --------------------------------------------------------------------------------------


def configmap(base: list[dict[str, Any]]) -> dict[str, str]:
    return by_kind(base, "ConfigMap")["mugpos-config"]["data"]


def example_secret() -> dict[str, str]:
    (secret,) = load_yaml_docs(K8S / "base" / "secret.example.yaml")
    return secret["stringData"]


def test_configmap_and_secret_make_valid_settings(base: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("MUGPOS_", "AWS_")):
            monkeypatch.delenv(name)
    for key, value in {**configmap(base), **example_secret()}.items():
        monkeypatch.setenv(key, value)
    try:
        settings = load_settings(env_file=None)
    except SettingsError as exc:
        pytest.fail(f"ConfigMap mugpos-config + Secret mugpos-secrets: {exc}")
    assert settings.store.startswith("r2://") and settings.aws_region == "auto"
    assert settings.s3_endpoint.endswith(".r2.cloudflarestorage.com")
    assert settings.web_host == "0.0.0.0" and settings.web_port == 6066


def test_secrets_stay_out_of_the_configmap(base: list[dict[str, Any]]) -> None:
    data = configmap(base)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MUGPOS_MONGODB_URI", "MUGPOS_REDIS_URL"):
        assert key not in data, f"{key} belongs in the Secret mugpos-secrets"
        assert key in example_secret()
    assert set(example_secret().values()) & {"CHANGE_ME"}, "the example Secret holds placeholders only"


def test_keda_scales_the_detect_group_on_the_images_topic(base: list[dict[str, Any]], keda: dict[str, Any]) -> None:
    data = configmap(base)
    settings = load_settings(
        env_file=None,
        topic_prefix=data["MUGPOS_TOPIC_PREFIX"],
        images_partitions=int(data["MUGPOS_IMAGES_PARTITIONS"]),
        broker=data["MUGPOS_BROKER"],
    )
    spec = keda["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mugpos-detect"}
    (trigger,) = spec["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == app_id(settings, "detect") == "mugpos-detect"
    assert meta["topic"] == settings.topic("images") == "mugpos.images"
    assert meta["bootstrapServers"].split(",") == settings.bootstrap
    assert int(meta["lagThreshold"]) > 0
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= settings.images_partitions, (
        "more detect Pods than images partitions would sit idle"
    )


def test_servicemonitor_scrapes_every_role_like_the_compose_prometheus(base: list[dict[str, Any]]) -> None:
    (monitor,) = load_yaml_docs(K8S / "components" / "monitoring" / "servicemonitor.yaml")
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = by_kind(base, "Service")
    assert {n for n, s in services.items() if selector.items() <= s["metadata"]["labels"].items()} == set(services)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "web" and endpoint["path"] == "/metrics"
    targets = {r.get("targetLabel"): r for r in endpoint["relabelings"]}
    assert targets["role"]["sourceLabels"] == ["__meta_kubernetes_service_label_app_kubernetes_io_component"]
    assert targets["job"]["replacement"] == "mugpos"
