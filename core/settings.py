"""Runtime settings: one object, read from ``MUGPOS_*`` environment variables and ``.env``.

Defaults match the development services that ``make services`` starts on loopback, so a
newcomer can run every command without configuring anything. Each field's description is the
documentation of its variable (the README table is generated from it).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "MUGPOS_"


class SettingsError(ValueError):
    """Raised when the environment holds an invalid setting; names the variable."""


class Settings(BaseSettings):
    """All knobs of a mugpos process. Every field maps to ``MUGPOS_<NAME>`` unless noted."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        populate_by_name=True,
    )

    # -- Kafka ---------------------------------------------------------------------------
    broker: str = Field(
        "kafka://127.0.0.1:19092",
        description="Kafka bootstrap servers, `kafka://host:port[;host:port]` (comma also accepted).",
    )
    topic_prefix: str = Field("mugpos.", description="Prefix of every topic name.")
    images_partitions: int = Field(
        12, ge=1, le=1024, description="Partitions of the images topic: the most GPU consumers that can share it."
    )
    partitions: int = Field(6, ge=1, le=1024, description="Partitions of the result topics.")
    replication_factor: int = Field(1, ge=1, le=16, description="Replication factor of created topics.")
    app_id: str = Field("mugpos", min_length=1, description="Faust application id (consumer group prefix).")
    session_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Consumer-group session timeout: how long a dead worker keeps its partitions."
    )
    heartbeat_s: float = Field(1.0, gt=0, le=60, description="Consumer-group heartbeat interval.")

    # -- Object store ----------------------------------------------------------------------
    store: str = Field(
        "s3://mugpos-images",
        description="Where `mugpos produce` uploads images: `s3://bucket[/prefix]`, `r2://bucket[/prefix]` or `file:///path`.",
    )
    s3_endpoint: str = Field(
        "http://127.0.0.1:8333",
        description="S3 endpoint URL; empty means AWS. Cloudflare R2: `https://<account>.r2.cloudflarestorage.com`.",
    )
    aws_access_key_id: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("AWS_ACCESS_KEY_ID", "MUGPOS_AWS_ACCESS_KEY_ID"),
        description="`AWS_ACCESS_KEY_ID`: S3/R2 access key (standard AWS variable).",
    )
    aws_secret_access_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY", "MUGPOS_AWS_SECRET_ACCESS_KEY"),
        description="`AWS_SECRET_ACCESS_KEY`: S3/R2 secret key (standard AWS variable).",
    )
    aws_region: str = Field(
        "us-east-1",
        validation_alias=AliasChoices("AWS_DEFAULT_REGION", "AWS_REGION", "MUGPOS_AWS_REGION"),
        description="`AWS_DEFAULT_REGION`: region for S3 signatures; R2 uses `auto`.",
    )
    store_concurrency: int = Field(16, ge=1, le=512, description="Most concurrent object-store requests per process.")
    store_retries: int = Field(4, ge=0, le=20, description="Retries (with exponential backoff) of a failed store call.")
    max_object_bytes: int = Field(
        32 * 1024 * 1024, ge=1, description="Largest image object fetched, in bytes; bigger ones are dead-lettered."
    )
    store_annotated: bool = Field(
        False, description="Also write each annotated image (boxes, verdict) to the store, next to the original."
    )
    max_image_pixels: int = Field(
        50_000_000, ge=1, description="Largest decoded image, in pixels (decompression-bomb guard)."
    )

    # -- Caches and sinks -------------------------------------------------------------------
    redis_url: str = Field("redis://127.0.0.1:16379/0", description="Redis URL of the result cache; empty disables it.")
    cache_ttl_s: int = Field(86_400, ge=1, description="Lifetime of a cached detection in Redis, in seconds.")
    mongodb_uri: str = Field(
        "mongodb://127.0.0.1:27117", description="MongoDB URI of the results store; empty disables the sink."
    )
    mongodb_db: str = Field("mugpos", min_length=1, description="MongoDB database name.")

    # -- Detection -----------------------------------------------------------------------------
    hold_initial_s: float = Field(
        0.5, gt=0, le=60, description="First wait before retrying a batch held by infrastructure trouble, seconds."
    )
    hold_max_s: float = Field(
        15.0, gt=0, le=600, description="Longest wait between retries of a held batch (exponential, with jitter)."
    )
    give_up_s: float = Field(
        900.0,
        gt=0,
        description="A batch held this long makes the worker exit non-zero, unacknowledged, so the group resumes it.",
    )
    allowed_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Buckets image events may name (comma separated); empty allows only the store's own bucket.",
    )
    batch_max: int = Field(32, ge=1, le=1024, description="Most images per inference batch.")
    batch_wait_ms: int = Field(20, ge=0, le=60_000, description="Longest wait to fill a batch, in milliseconds.")
    model: str = Field(
        "models/weights/yolo26n.pt",
        description="Path of the Ultralytics detector weights (`.pt`): by default the stock COCO YOLO26n, whose "
        "`cup` and `dining table` become `mug` and `surface`; `MUGPOS_HEAD` adds coasters on the same trunk.",
    )
    head: str = Field(
        "models/weights/mugpos-coaster-head.pt",
        description="Second detection head (mug, coaster, surface) trained on the frozen trunk of `MUGPOS_MODEL`; "
        "both heads share one forward pass and their outputs are merged. Empty: the model's own head only.",
    )
    device: str = Field("auto", description="Torch device: `auto` (CUDA when present), `cpu`, `cuda`, `cuda:N`.")
    image_size: int = Field(640, ge=32, le=4096, description="Model input size in pixels (the letterbox's long side).")
    letterbox: Literal["rect", "square"] = Field(
        "rect",
        description="`rect` pads only to the next multiple of 32, like YOLO.predict (a 4:3 camera costs 25 % fewer "
        "pixels; one forward pass per aspect ratio in a batch); `square` pads every image to image_size x "
        "image_size (one pass per batch, whatever the mix of cameras).",
    )
    confidence: float = Field(0.25, ge=0.0, le=1.0, description="Lowest detection confidence reported.")
    sample_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of frames written for labelling under `MUGPOS_REVIEW_PREFIX` of the store (image plus "
        "YOLO label file of its detections; chosen by image id, so a replayed frame is chosen again). 0: none.",
    )
    review_below: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Also write for labelling every frame with a mug, coaster or surface scored below this "
        "(the low-confidence band above `MUGPOS_CONFIDENCE`). 0: none.",
    )
    review_prefix: str = Field("review/", min_length=1, description="Store prefix of the frames for labelling.")
    clip_weights: str = Field("", description="Local open_clip weights file; empty uses the dominant-colour attribute.")
    clip_model: str = Field("ViT-B-32", description="open_clip architecture of `MUGPOS_CLIP_WEIGHTS`.")

    # -- Per-camera memory (ordering, tracking, stateful rules) --------------------------------
    lateness_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="How far out of capture-time order a camera's frames may arrive and still be tracked in order: "
        "frames wait up to this long (capture time, or wall time when the camera goes quiet) for earlier ones. "
        "A frame later than that is positioned and flagged `late`, but moves no state.",
    )
    tracking: bool = Field(True, description="Give each mug a track id across its camera's frames (ByteTrack).")
    track_lost_s: float = Field(
        30.0,
        gt=0,
        le=86400,
        description="Capture-time seconds a tracked mug may go unseen and keep its id; after that it has disappeared.",
    )
    cameras_ready_timeout_s: float = Field(
        30.0,
        ge=0,
        le=600,
        description="Longest a starting analyze worker waits to read the cameras topic before positioning frames "
        "(without it, zones and configured scales would be missing from the first frames).",
    )
    episode_idle_s: float = Field(
        60.0,
        gt=0,
        le=86400,
        description="Wall seconds without a frame from a camera after which its open episodes end (the camera is "
        "gone, so nothing would ever clear them).",
    )

    # -- Control (scaling of the detect workers) -----------------------------------------------
    target_lag_s: float = Field(10.0, gt=0, description="Target drain time of the detection backlog, seconds.")
    idle_s: float = Field(
        300.0, ge=0, description="Seconds without lag or arrivals before detect workers go to zero (min workers 0)."
    )
    gpu_hour_cost: float = Field(2.5, ge=0, description="Price of one GPU-hour, for GPU-hours and $/1,000 images.")
    min_workers: int = Field(0, ge=0, le=1024, description="Fewest detect workers; 0 allows scale-to-zero.")
    max_workers: int = Field(
        12, ge=1, le=1024, description="Most detect workers (also capped by the images partitions)."
    )
    scaler: Literal["none", "local", "kubernetes"] = Field(
        "none", description="What applies scaling decisions: none (publish only), local processes, kubernetes."
    )
    worker_rate: float = Field(20.0, gt=0, description="Images/s one detect worker sustains, until measured.")
    worker_startup_s: float = Field(20.0, ge=0, description="Seconds from starting a detect worker to it consuming.")
    scale_down_s: float = Field(60.0, ge=0, description="Lower demand must hold this long before scaling down.")
    control_interval_s: float = Field(5.0, gt=0, description="Seconds between control decisions.")
    k8s_deployment: str = Field("mugpos-detect", min_length=1, description="Deployment the kubernetes scaler scales.")
    k8s_namespace: str = Field("default", min_length=1, description="Namespace of that Deployment.")
    worker_state_dir: str = Field(".run/workers", description="PID files and logs of the local scaler.")

    # -- Web -----------------------------------------------------------------------------------
    web_port: int = Field(
        6066, ge=1, le=65535, description="Port of the worker's web server (stats, metrics, dashboard)."
    )
    web_host: str = Field("127.0.0.1", description="Interface the web server binds.")
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token for rule changes over HTTP (`POST`/`DELETE /mugpos/rules`); unset: changes refused.",
    )
    api_read_token: SecretStr | None = Field(
        None,
        description="Read-only bearer token: may test rules over HTTP (`POST /mugpos/rules/test`), not change them.",
    )
    require_read_token: bool = Field(
        False,
        description="Reads over HTTP (stats, results, images, rules) need the read or write token; "
        "`/healthz`, `/readyz`, `/metrics` and the dashboard page itself stay open.",
    )
    api_rate: float = Field(
        20.0, gt=0, description="Requests per second one client address may make to the HTTP API (then 429)."
    )
    api_burst: int = Field(40, ge=1, description="Requests one client address may make at once above `api_rate`.")
    render_concurrency: int = Field(
        2, ge=1, le=64, description="Annotated images rendered at once per worker; more requests wait their turn."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level of workers.")

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        if not bootstrap_servers(value):
            raise ValueError("expected kafka://host:port[;host:port...]")
        return value

    @field_validator("store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        scheme, _, rest = value.partition("://")
        if scheme not in {"s3", "r2", "file"} or not rest.strip("/"):
            raise ValueError("expected s3://bucket[/prefix], r2://bucket[/prefix] or file:///path")
        return value

    @field_validator("allowed_buckets", mode="before")
    @classmethod
    def _split_buckets(cls, value: object) -> object:
        if isinstance(value, str):  # "a,b" as a person writes it, or the JSON list settings_env() writes
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [b.strip() for b in text.split(",") if b.strip()]
        return value

    @field_validator("s3_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL, or empty for AWS")
        return value.rstrip("/")

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= allowed:
            raise ValueError("topic names allow only letters, digits, '.', '_' and '-'")
        return value

    @model_validator(mode="after")
    def _idle_outlasts_lateness(self) -> Settings:
        # frames wait up to lateness_s before the rules stage sees them: a shorter idle time would
        # end a camera's episodes while its next frames are still on their way
        if self.episode_idle_s <= self.lateness_s:
            raise ValueError(
                f"MUGPOS_EPISODE_IDLE_S ({self.episode_idle_s:g}) must exceed MUGPOS_LATENESS_S ({self.lateness_s:g})"
            )
        return self

    @property
    def bootstrap(self) -> list[str]:
        """Broker addresses as ``host:port`` strings for aiokafka."""
        return bootstrap_servers(self.broker)

    def topic(self, name: str) -> str:
        """Full topic name of a logical topic (``images`` -> ``mugpos.images``)."""
        return f"{self.topic_prefix}{name}"


def bootstrap_servers(url: str) -> list[str]:
    """Parse ``kafka://a:1;b:2`` (or comma separated, scheme optional) into ``['a:1', 'b:2']``."""
    hosts: list[str] = []
    for part in url.replace(",", ";").split(";"):
        part = part.strip()
        if part.startswith("kafka://"):
            part = part[len("kafka://") :]
        part = part.rstrip("/")
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not host or "/" in host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            return []
        hosts.append(part)
    return hosts


def env_name(field: str) -> str:
    """The environment variable that sets a field (honours the AWS aliases)."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        return first if isinstance(first, str) else ENV_PREFIX + field.upper()
    return ENV_PREFIX + field.upper()


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build settings, turning validation errors into one message that names each variable."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err["loc"][0] if err["loc"] else "?"
            name = env_name(str(loc)) if str(loc) in Settings.model_fields else str(loc)
            problems.append(f"{name}={err.get('input')!r}: {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return load_settings()


def settings_env(settings: Settings, base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """Environment that reproduces ``settings`` in a child process (e.g. a worker started by a tool).

    Starts from ``base`` (default: this process's environment) without its MUGPOS_*/AWS_* variables,
    so the child sees exactly these settings and nothing a shell left behind.
    """
    import os

    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith((ENV_PREFIX, "AWS_"))}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, list):
            value = ",".join(map(str, value))
        env[env_name(name)] = str(value)
    env.update(extra)
    return env
