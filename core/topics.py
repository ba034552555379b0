"""Topic layout: names, partition counts, compaction, and which event type each carries."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from mugpos.core.errors import BrokerUnavailable
from mugpos.core.settings import Settings

log = logging.getLogger(__name__)

#: Logical topic -> Avro record name of its values.
TOPIC_RECORDS: dict[str, str] = {
    "images": "ImageEvent",
    "detections": "DetectionEvent",
    "positions": "PositionEvent",
    "actions": "ActionEvent",
    "rules": "RuleDefinition",
    "control": "ScalingDecision",
    "dlq": "DeadLetter",
    "cameras": "CameraConfig",
}


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is created."""

    logical: str
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def record(self) -> str:
        return TOPIC_RECORDS[self.logical]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic of the system. Images get the most partitions: one per possible GPU consumer."""
    specs = []
    for logical in TOPIC_RECORDS:
        partitions = settings.images_partitions if logical == "images" else settings.partitions
        configs: dict[str, str] = {}
        if logical in ("rules", "cameras"):
            partitions, configs = 1, {"cleanup.policy": "compact"}
        elif logical == "control":
            partitions = 1
        specs.append(TopicSpec(logical, settings.topic(logical), partitions, configs))
    return specs


#: Roles whose agents keep changelogged Faust tables, and the tables (``agents.position``, ``agents.rules``).
STATE_TABLES: dict[str, tuple[str, ...]] = {"all": ("tracks", "episodes"), "analyze": ("tracks", "episodes")}


def role_app_id(settings: Settings, role: str) -> str:
    """Faust app id (and consumer group) of a role: ``mugpos`` for all, ``mugpos-detect`` etc. otherwise."""
    return settings.app_id if role == "all" else f"{settings.app_id}-{role}"


def state_topic_specs(settings: Settings) -> list[TopicSpec]:
    """The changelog topics of the roles' tables (Faust's ``<app id>-<table>-changelog``), compacted and
    with the partitions of the topics the tables are keyed like: created here, since Faust may not."""
    return [
        TopicSpec(
            "changelog",
            f"{role_app_id(settings, role)}-{table}-changelog",
            settings.partitions,
            {"cleanup.policy": "compact"},
        )
        for role, tables in STATE_TABLES.items()
        for table in tables
    ]


def resolve_topic(settings: Settings, name: str) -> TopicSpec:
    """Accept a logical name (``images``) or a full one (``mugpos.images``)."""
    for spec in topic_specs(settings):
        if name in (spec.logical, spec.name):
            return spec
    known = ", ".join(TOPIC_RECORDS)
    raise ValueError(f"unknown topic {name!r}; known: {known} (prefix {settings.topic_prefix!r} optional)")


async def ensure_topics(settings: Settings, timeout_s: float = 15.0) -> list[str]:
    """Create missing topics with their partition counts; returns the names created.

    Topics are created explicitly (never auto-created) because partition counts cannot be raised
    later on every broker, and the images count bounds how many GPU consumers can share the load.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        await _quiet_close(admin)
        raise BrokerUnavailable(f"cannot reach the Kafka broker at {settings.broker}: {exc!r}") from None
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in topic_specs(settings) + state_topic_specs(settings) if s.name not in existing]
        if wanted:
            new = [NewTopic(s.name, s.partitions, settings.replication_factor, topic_configs=s.configs) for s in wanted]
            response = await admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
            for name, code, *rest in getattr(response, "topic_errors", []):
                if code not in (0, 36):  # 36 = TOPIC_ALREADY_EXISTS (a concurrent creator won)
                    raise BrokerUnavailable(f"could not create topic {name}: error {code} {rest}")
        return [s.name for s in wanted]
    finally:
        await _quiet_close(admin)


async def _quiet_close(admin: AIOKafkaAdminClient) -> None:
    try:
        await admin.close()
    except Exception as exc:  # closing a client that never connected can raise; nothing to recover
        log.debug("admin client close failed: %r", exc)
