"""The README documents what the code has: every setting, every topic, both quick-start commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from mugpos.core.settings import Settings, env_name
from mugpos.core.topics import TOPIC_RECORDS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("field", list(Settings.model_fields))
def test_every_setting_is_in_the_readme_table(field: str) -> None:
    assert f"| `{env_name(field)}` |" in README


@pytest.mark.parametrize("topic", list(TOPIC_RECORDS))
def test_every_topic_is_in_the_readme(topic: str) -> None:
    assert f"| `{topic}` |" in README


def test_quick_start_names_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
