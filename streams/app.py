"""Faust application factory and topic declarations.

Every topic is declared with raw bytes: agents decode values themselves with the project's codec,
because a decode error inside Faust's own deserialisation stops an agent while its offsets are
still committed (messages lost without a trace). Each worker role is its own Faust app id, hence
its own consumer group, so roles scale independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import faust
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from mugpos.core.settings import Settings
from mugpos.core.topics import role_app_id, topic_specs
from mugpos.storage.results import ResultsStore
from mugpos.storage.store import open_store
from mugpos.streams.stats import PipelineStats

Role = Literal["all", "detect", "analyze", "sink", "control"]
ROLES: tuple[Role, ...] = ("all", "detect", "analyze", "sink", "control")


@dataclass(frozen=True)
class Topics:
    """The Faust topic objects of one app, by logical name."""

    images: faust.TopicT
    detections: faust.TopicT
    positions: faust.TopicT
    actions: faust.TopicT
    rules: faust.TopicT
    control: faust.TopicT
    dlq: faust.TopicT
    cameras: faust.TopicT


class MugposWeb(AiohttpWeb):
    """Faust's aiohttp server with ``/`` left free for the dashboard; Faust's own stats move to /faust."""

    production_blueprints = []  # noqa: RUF012 - overrides a ClassVar of the base
    debug_blueprints = [  # noqa: RUF012
        ("/faust/graph", "faust.web.apps.graph:blueprint"),
        ("/faust", "faust.web.apps.stats:blueprint"),
    ]


class MugposApp(faust.App):
    """A Faust app that carries the mugpos settings and topics (``app.topics`` is Faust's conductor)."""

    settings: Settings
    role: Role
    mugpos_topics: Topics
    mugpos_stats: PipelineStats
    mugpos_results: ResultsStore

    def _new_web(self) -> AiohttpWeb:
        return MugposWeb(self)


def app_id(settings: Settings, role: Role) -> str:
    """Consumer group / app id of a role: ``mugpos`` for all, ``mugpos-detect`` etc. otherwise."""
    return role_app_id(settings, role)


def create_app(settings: Settings, role: Role = "all", **overrides: object) -> MugposApp:
    """Build the Faust app of ``role``; agents (``mugpos.agents``) and web views (``mugpos.web``) attach to it."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    conf: dict[str, object] = {
        "broker": settings.broker,
        "web_port": settings.web_port,
        "web_host": settings.web_host,
        "web_bind": settings.web_host,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_allow_declare": False,  # topics are created by `ensure_topics` with their own counts
        "store": "memory://",
        "web_stats_enabled": True,
        "web_metrics_enabled": True,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_s,
        "broker_commit_every": 100,
        "broker_commit_interval": 1.0,
    }
    conf.update(overrides)
    app = MugposApp(app_id(settings, role), **conf)  # type: ignore[arg-type]
    app.settings = settings
    app.role = role
    declared = {
        spec.logical: app.topic(
            spec.name,
            key_type=bytes,
            value_type=bytes,
            partitions=spec.partitions,
            key_serializer="raw",
            value_serializer="raw",
        )
        for spec in topic_specs(settings)
    }
    app.mugpos_topics = Topics(**declared)
    app.mugpos_stats = PipelineStats()
    app.mugpos_results = ResultsStore(settings, open_store(settings, guarded=True))
    return app
