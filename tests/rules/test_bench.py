"""The benchmark script runs and reports one parseable JSON line (its numbers are measured by hand)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "rules_eval.py"


def test_bench_prints_a_table_and_one_json_line() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--events", "400", "--rounds", "1", "--rules", "100", "--scope", "mixed"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "rules_eval" and line["rules"] == 100 and line["scope"] == "mixed"
    assert set(line["scenarios"]) == {"clean", "violations", "violations_evidence"}
    assert line["events_per_s"] > 0 and line["target_events_per_s"] == 50_000
    assert any("events/s" in text for text in lines[:-1])  # the rich table came first


def test_bench_min_rate_turns_the_target_into_an_exit_code() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--events", "200", "--rounds", "1", "--rules", "10", "--min-rate", "1e12"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
