"""Prometheus metrics of the rules stage. Labels are bounded codes, never rule ids or sources."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RULE_SKIPS = Counter(
    "mugpos_rule_skips_total",
    "Rule evaluations skipped because the event lacks a field or holds a wrong type.",
    ["reason"],
)
RULE_FIRES = Counter("mugpos_rule_fires_total", "Rules that fired on a position event (before cooldown).", ["severity"])
ACTIONS_SUPPRESSED = Counter("mugpos_actions_suppressed_total", "Fires dropped by a rule's per-source cooldown.")
ACTIONS_PUBLISHED = Counter("mugpos_actions_published_total", "ActionEvents published on the actions topic.", ["type"])
DELIVERIES = Counter(
    "mugpos_action_deliveries_total", "Deliveries of actions by sender and outcome.", ["sender", "outcome"]
)
RULES_LOADED = Gauge("mugpos_rules_loaded", "Rules in this worker's registry.", ["state"])
RULES_REJECTED = Counter(
    "mugpos_rules_rejected_total", "Records on the rules topic that failed validation.", ["reason"]
)
COOLDOWN_ERRORS = Counter("mugpos_cooldown_errors_total", "Cooldown store calls that failed (Redis down).")
LATE_FRAMES = Counter(
    "mugpos_late_frames_total",
    "Frames that came after a later frame of their camera had been taken in: judged by per-image rules only.",
    ["stage"],
)
EPISODES = Counter("mugpos_episodes_total", "Episode starts and ends of stateful rules.", ["phase"])
