"""The ``mugpos`` command line: produce images, tail topics, run workers, manage topics."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from mugpos.core.codec import to_json_line
from mugpos.core.errors import MugposError
from mugpos.core.settings import Settings, SettingsError, env_name, get_settings

cli = typer.Typer(
    name="mugpos",
    help="Event-driven stream processor that watches where mugs stand.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
topics_cli = typer.Typer(help="Create and list the Kafka topics.", no_args_is_help=True)
cli.add_typer(topics_cli, name="topics")

err = Console(stderr=True)

#: Exit codes: 1 = some items failed, 2 = cannot start (settings, services, arguments).
EXIT_PARTIAL, EXIT_FATAL = 1, 2


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = EXIT_FATAL) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _parse_metadata(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--meta expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


@cli.command()
def produce(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively).")],
    source: Annotated[str, typer.Option("--source", "-s", help="Source id, e.g. a camera id.")] = "cli",
    meta: Annotated[list[str], typer.Option("--meta", "-m", help="Metadata KEY=VALUE, repeatable.")] = [],  # noqa: B006
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Uploads in flight.")] = 8,
) -> None:
    """Upload images to the store and produce one ImageEvent each."""
    from mugpos.streams.producer import ImageProducer, collect_images

    settings = _settings()
    metadata = _parse_metadata(meta)
    try:
        files = collect_images(paths)
    except MugposError as exc:
        _fail(str(exc))
    if not files:
        _fail("no image files found in " + ", ".join(map(str, paths)))

    async def run() -> tuple[int, int, list[str]]:
        done_bytes, done, failures = 0, 0, []
        sem = asyncio.Semaphore(concurrency)
        sizes = {p: p.stat().st_size if p.is_file() else 0 for p in files}
        columns = (
            TextColumn("[bold]produce"),
            BarColumn(),
            TextColumn("{task.fields[images]}/" + f"{len(files)} images"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        async with ImageProducer(settings) as producer:
            with Progress(*columns, console=err, transient=False) as progress:
                task = progress.add_task("produce", total=sum(sizes.values()), images=0)

                async def one(path: Path) -> None:
                    nonlocal done_bytes, done
                    async with sem:
                        try:
                            await producer.produce_file(path, source=source, metadata=metadata)
                        except MugposError as exc:
                            failures.append(str(exc))
                            progress.console.print(f"[yellow]skipped:[/] {exc}", highlight=False, soft_wrap=True)
                        else:
                            done += 1
                            done_bytes += sizes[path]
                        progress.update(task, advance=sizes[path], images=done)

                await asyncio.gather(*(one(p) for p in files))
        return done, done_bytes, failures

    started = time.perf_counter()
    try:
        done, nbytes, failures = asyncio.run(run())
    except MugposError as exc:
        _fail(str(exc))
    elapsed = max(time.perf_counter() - started, 1e-9)
    err.print(
        f"produced {done} image(s), {nbytes / 1e6:.2f} MB in {elapsed:.2f} s "
        f"({done / elapsed:.1f} images/s) to {settings.topic('images')}; {len(failures)} failed",
        highlight=False,
        soft_wrap=True,
    )
    if failures:
        raise typer.Exit(EXIT_PARTIAL)


@cli.command()
def tail(
    topic: Annotated[
        str, typer.Argument(help="images, detections, positions, actions, rules, control, dlq or cameras.")
    ],
    count: Annotated[int | None, typer.Option("--count", "-n", min=1, help="Stop after N events.")] = None,
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the oldest event.")] = False,
    timeout: Annotated[float | None, typer.Option(min=0.1, help="Stop after S seconds without events.")] = None,
) -> None:
    """Print a topic's decoded events as JSON lines."""
    from mugpos.core.topics import resolve_topic
    from mugpos.streams.consumer import consume_events

    settings = _settings()
    try:
        resolve_topic(settings, topic)
    except ValueError as exc:
        _fail(str(exc))

    async def run() -> int:
        seen = 0
        async for item in consume_events(
            settings, topic, from_beginning=from_beginning, count=count, timeout_s=timeout
        ):
            seen += 1
            if item.error is not None:
                err.print(
                    f"[yellow]undecodable[/] {item.topic}[{item.partition}]@{item.offset}: "
                    f"{item.error.reason}: {item.error}",
                    highlight=False,
                )
                continue
            line = to_json_line(item.event) if item.event is not None else '{"tombstone":true}'
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        return seen

    try:
        seen = asyncio.run(run())
    except MugposError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    if count is not None and seen < count:
        _fail(f"got {seen} of {count} event(s) before the {timeout} s timeout", EXIT_PARTIAL)


@cli.command()
def worker(
    role: Annotated[str, typer.Option(help="all, detect, analyze, sink or control.")] = "all",
) -> None:
    """Run a Faust worker for one role (each role is its own consumer group)."""
    from mugpos.core.topics import ensure_topics
    from mugpos.streams.app import ROLES, create_app

    settings = _settings()
    if role not in ROLES:
        _fail(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    try:
        asyncio.run(ensure_topics(settings))
    except MugposError as exc:
        _fail(str(exc))
    import faust

    from mugpos import agents, web

    try:
        app = create_app(settings, role)
        web.register_views(app)
        agents.register(app)
    except MugposError as exc:  # e.g. an impossible control configuration: say so before starting
        _fail(str(exc))
    faust.Worker(app, loglevel=settings.log_level).execute_from_commandline()


@cli.command()
def demo(
    count: Annotated[int, typer.Option(min=1, max=500, help="Drawn scenes to analyse.")] = 12,
    seed: Annotated[int, typer.Option(help="Scene seed.")] = 7,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Dashboard port.")] = 6066,
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its store and logs.")] = Path(".run/demo"),
    wait: Annotated[bool, typer.Option(help="Keep the dashboard up until Ctrl-C.")] = True,
    timeout: Annotated[float, typer.Option(min=10, help="Longest wait for all verdicts, seconds.")] = 180.0,
) -> None:
    """Run the whole pipeline locally on embedded defaults and show the verdicts as they arrive."""
    from mugpos.cli.demo import run_demo

    try:
        code = run_demo(count=count, seed=seed, data_dir=data_dir, web_port=port, wait=wait, timeout_s=timeout)
    except MugposError as exc:
        _fail(str(exc))
    raise typer.Exit(code)


@topics_cli.command("create")
def topics_create() -> None:
    """Create the missing topics with their configured partition counts."""
    from mugpos.core.topics import ensure_topics, topic_specs

    settings = _settings()
    try:
        created = asyncio.run(ensure_topics(settings))
    except MugposError as exc:
        _fail(str(exc))
    for spec in topic_specs(settings):
        state = "created" if spec.name in created else "exists"
        print(f"{spec.name}\t{spec.partitions} partition(s)\t{state}")


@topics_cli.command("list")
def topics_list() -> None:
    """Show the topics this configuration uses."""
    from mugpos.core.topics import topic_specs

    for spec in topic_specs(_settings()):
        extra = ",".join(f"{k}={v}" for k, v in spec.configs.items())
        print(f"{spec.name}\t{spec.partitions}\t{spec.record}\t{extra}")


@cli.command("settings")
def show_settings() -> None:
    """Print the effective settings as VARIABLE=value (secrets and passwords in URLs masked)."""
    from mugpos.core.redact import redact_url

    settings = _settings()
    for field in Settings.model_fields:
        value = getattr(settings, field)
        shown = "********" if value is not None and "secret" in type(value).__name__.lower() else value
        if isinstance(shown, str) and "://" in shown:
            shown = redact_url(shown)
        print(f"{env_name(field)}={'' if shown is None else shown}")


#: Modules that add command groups to the CLI; each has ``register(cli: typer.Typer) -> None``.
EXTENSIONS: tuple[str, ...] = ("mugpos.cli.ml", "mugpos.cli.rules", "mugpos.cli.dlq", "mugpos.cli.cameras")


def _load_extensions() -> None:
    import importlib

    for name in EXTENSIONS:
        importlib.import_module(name).register(cli)


_load_extensions()


def main() -> None:
    """Console-script entry point."""
    # Client libraries log connection failures themselves; the CLI reports them once, in its own words.
    for noisy in ("aiokafka", "botocore", "aiobotocore"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    cli()


if __name__ == "__main__":
    main()
