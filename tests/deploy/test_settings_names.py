"""Every MUGPOS_* / AWS_* name in the deployment files is one the settings object reads.

A misspelt variable in a compose file or a ConfigMap is silently ignored by pydantic-settings
(`extra="ignore"`), and the worker runs with the default instead: this test names it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices

from mugpos.core.settings import ENV_PREFIX, Settings
from tests.deploy.support import (
    AWS_NAME,
    COMPOSE_FILE,
    COMPOSE_OVERRIDES,
    DOCKERFILE,
    ENV_EXAMPLE,
    MUGPOS_NAME,
    ROOT,
    k8s_manifest_files,
    rel,
)

#: Knobs of scripts/services.sh (the local dev services), not of the settings object.
SERVICE_SCRIPT_KNOBS = frozenset(
    {
        "MUGPOS_RUN_DIR",
        "MUGPOS_BROKER_PORT",
        "MUGPOS_S3_PORT",
        "MUGPOS_REDIS_PORT",
        "MUGPOS_MONGO_PORT",
        "MUGPOS_BUCKET",
        "MUGPOS_READY_TIMEOUT",
        "MUGPOS_STOP_TIMEOUT",
        "MUGPOS_SERVICES",
        "MUGPOS_PYTHON",
    }
)


def known_names() -> set[str]:
    """The environment variables Settings reads: MUGPOS_<FIELD>, or a field's alias choices."""
    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(ENV_PREFIX + field.upper())
    return names


def deployment_files() -> list[Path]:
    files = [COMPOSE_FILE, *COMPOSE_OVERRIDES, ENV_EXAMPLE, DOCKERFILE, *k8s_manifest_files()]
    files += sorted((ROOT / "deploy").rglob("*.py")) + sorted((ROOT / "deploy").rglob("*.yml"))
    files += [p for p in (ROOT / "docs" / "deploy.md",) if p.exists()]
    return sorted(set(files))


def test_the_settings_object_is_what_we_think() -> None:
    names = known_names()
    assert {"MUGPOS_BROKER", "MUGPOS_STORE", "MUGPOS_WEB_PORT", "AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION"} <= names


@pytest.mark.parametrize("path", deployment_files(), ids=rel)
def test_every_variable_is_a_setting(path: Path) -> None:
    text = path.read_text()
    known = known_names()
    unknown_mugpos = sorted(set(MUGPOS_NAME.findall(text)) - known - SERVICE_SCRIPT_KNOBS)
    unknown_aws = sorted(set(AWS_NAME.findall(text)) - known)
    assert not unknown_mugpos and not unknown_aws, (
        f"{rel(path)} uses variables that streams.settings.Settings does not read: "
        + ", ".join(unknown_mugpos + unknown_aws)
    )


def test_service_script_knobs_are_still_used_by_the_scripts() -> None:
    scripts = " ".join(p.read_text() for p in (ROOT / "scripts").iterdir() if p.is_file())
    stale = sorted(name for name in SERVICE_SCRIPT_KNOBS if name not in scripts)
    assert not stale, f"allowed as service-script knobs but no script reads them: {', '.join(stale)}"
    assert not SERVICE_SCRIPT_KNOBS & known_names(), "a knob became a setting: drop it from the allow-list"


def test_the_check_catches_a_misspelt_name(tmp_path: Path) -> None:
    text = "MUGPOS_BROKER=kafka://kafka:9092\nMUGPOS_BROKERS=kafka://kafka:9092\n"
    assert set(MUGPOS_NAME.findall(text)) - known_names() == {"MUGPOS_BROKERS"}
