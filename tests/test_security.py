"""Secrets stay out of what people see; clients get their share of the API; stats never start CUDA."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mugpos.core.redact import redact_url, redact_webhook
from mugpos.rules.model import rule_from_obj, rule_to_json, rule_to_public_json
from mugpos.web.guard import TokenBuckets
from mugpos.web.views import without_webhook_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mongodb://app:hunter2@db.internal:27017/mugpos", "mongodb://app:****@db.internal:27017/mugpos"),
        (
            "mongodb+srv://app:p%40ss@cluster0.example.net/?retryWrites=true",
            "mongodb+srv://app:****@cluster0.example.net/?retryWrites=true",
        ),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:****@127.0.0.1:6379/0"),
        ("redis://127.0.0.1:16379/0", "redis://127.0.0.1:16379/0"),  # nothing to hide
        ("mongodb://[::1]:27017", "mongodb://[::1]:27017"),
    ],
)
def test_passwords_in_service_urls_are_masked(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXXXXXX", "https://hooks.slack.com/****"),
        ("https://alerts.example.com:8443/hook?token=abc", "https://alerts.example.com:8443/****"),
        ("https://user:pw@alerts.example.com/", "https://alerts.example.com/"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/"),
        ("not a url", "****"),
    ],
)
def test_webhook_urls_keep_only_their_host(url: str, shown: str) -> None:
    assert redact_webhook(url) == shown


def test_a_rule_read_over_http_shows_its_webhook_host_not_its_secret_path() -> None:
    condition = {"kind": "compare", "field": "mug.on_coaster", "op": "==", "value": False}
    action = {"type": "webhook", "target": "https://h.example.com/s/TOKEN"}
    rule = rule_from_obj({"rule_id": "hook", "condition": condition, "action": action})
    assert rule_to_public_json(rule)["action"] == {
        **rule_to_json(rule)["action"],
        "target": "https://h.example.com/****",
    }
    assert rule_to_json(rule)["action"]["target"] == "https://h.example.com/s/TOKEN"  # stored and exported whole


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_client_gets_its_burst_then_its_rate_and_is_told_when_to_come_back() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("10.0.0.1")
    assert wait == pytest.approx(0.5)  # one token every half second
    assert buckets.take("10.0.0.2") == 0.0  # another client is not affected
    clock.now += 0.5
    assert buckets.take("10.0.0.1") == 0.0
    clock.now += 60
    assert [buckets.take("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]  # refilled, never beyond the burst
    assert buckets.take("10.0.0.1") > 0


def test_the_stats_page_never_imports_torch_nor_initialises_cuda() -> None:
    code = (
        "import sys\n"
        "from mugpos.streams.stats import PipelineStats\n"
        "snap = PipelineStats().snapshot()\n"
        "assert snap['gpu'] == [], snap['gpu']\n"
        "assert 'torch' not in sys.modules, 'the stats snapshot imported torch'\n"
        "import torch\n"
        "assert PipelineStats().snapshot()['gpu'] == [] and not torch.cuda.is_initialized()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_result_read_over_http_hides_its_actions_webhook_paths() -> None:
    hook = {"action_type": "webhook", "target": "https://h.example.com/s/TOKEN", "rule_id": "r"}
    topic = {"action_type": "publish", "target": "mugpos.alerts", "rule_id": "p"}
    result = {"image_id": "img-1", "actions": {"a1": hook, "a2": topic}}
    shown = without_webhook_secrets(result)
    assert shown["actions"]["a1"]["target"] == "https://h.example.com/****"
    assert shown["actions"]["a2"] == topic
    assert result["actions"]["a1"]["target"] == "https://h.example.com/s/TOKEN"  # the stored result is untouched
