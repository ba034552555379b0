"""``mugpos dlq``: list, count and replay dead letters (an extension loaded by ``mugpos.cli.main``).

Dead letters are bad input (undecodable, missing object, not an image, ...); infrastructure
trouble never lands there (it is held and retried). Once a cause is fixed (an object uploaded,
a bug fixed), ``replay`` re-produces the original messages to their original topics. Replay is
idempotent: results are keyed by image id, so replaying twice still leaves one result per image.
Exit codes follow the main CLI: 0 success, 1 partial (some letters could not be replayed), 2 bad
input or services down.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mugpos.cli.rules import EXIT_FATAL, EXIT_PARTIAL, _fail, _settings

dlq_cli = typer.Typer(help="List, count and replay dead letters.", no_args_is_help=True)
out = Console()

Stage = Annotated[str | None, typer.Option(help="Only this stage (decode, fetch, image, detect, position, ...).")]
Reason = Annotated[str | None, typer.Option(help="Only this reason (object_missing, image_corrupt, ...).")]
Source = Annotated[str | None, typer.Option(help="Only letters whose original message came from this camera.")]
Since = Annotated[str | None, typer.Option(help="Only letters since: 30m, 2h, 1d, or an ISO time.")]
ImageId = Annotated[str | None, typer.Option("--image-id", help="Only this image's letters.")]
Idle = Annotated[float, typer.Option(help="Stop reading once the topic is quiet this long, seconds.")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")]


def register(cli: typer.Typer) -> None:
    cli.add_typer(dlq_cli, name="dlq")


def _filter(stage: str | None, reason: str | None, source: str | None, since: str | None, image_id: str | None) -> Any:
    from mugpos.streams.dlq import DeadLetterFilter, parse_since

    try:
        moment = parse_since(since) if since else None
    except ValueError as exc:
        _fail(f"--since: {exc}")
    return DeadLetterFilter(stage=stage, reason=reason, source=source, since=moment, image_id=image_id)


def _read(where: Any, idle: float) -> list[Any]:
    from mugpos.core.errors import MugposError
    from mugpos.streams.dlq import read_dead_letters

    try:
        return asyncio.run(read_dead_letters(_settings(), where, idle_s=idle))
    except MugposError as exc:
        _fail(str(exc))


@dlq_cli.command("list")
def list_letters(
    stage: Stage = None,
    reason: Reason = None,
    source: Source = None,
    since: Since = None,
    image_id: ImageId = None,
    idle: Idle = 2.0,
    as_json: AsJson = False,
) -> None:
    """Show dead letters, oldest first (the original bytes stay out of it)."""
    letters = _read(_filter(stage, reason, source, since, image_id), idle)
    if as_json:
        for letter in letters:
            print(json.dumps(letter.summary()))
        return
    table = Table(title=f"{len(letters)} dead letter(s)")
    for column in ("at", "stage", "reason", "image", "source", "from", "message"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        s = letter.summary()
        origin = f"{s['original_topic']}[{s['original_partition']}]@{s['original_offset']}"
        table.add_row(
            s["failed_at"][:19], s["stage"], s["reason"], s["image_id"] or "", s["source"] or "", origin, s["message"]
        )
    out.print(table)


@dlq_cli.command("stats")
def stats_letters(
    stage: Stage = None,
    reason: Reason = None,
    source: Source = None,
    since: Since = None,
    idle: Idle = 2.0,
    as_json: AsJson = False,
) -> None:
    """Count dead letters by stage and reason."""
    from mugpos.streams.dlq import stats

    rows = stats(_read(_filter(stage, reason, source, since, None), idle))
    if as_json:
        print(json.dumps({"total": sum(r["count"] for r in rows), "by_reason": rows}))
        return
    table = Table(title=f"{sum(r['count'] for r in rows)} dead letter(s)")
    table.add_column("stage")
    table.add_column("reason")
    table.add_column("count", justify="right")
    for row in rows:
        table.add_row(row["stage"], row["reason"], str(row["count"]))
    out.print(table)


@dlq_cli.command("replay")
def replay_letters(
    stage: Stage = None,
    reason: Reason = None,
    source: Source = None,
    since: Since = None,
    image_id: ImageId = None,
    idle: Idle = 2.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be replayed; produce nothing.")] = False,
) -> None:
    """Re-produce the original messages of matching dead letters to their original topics."""
    from mugpos.core.errors import MugposError
    from mugpos.streams.dlq import replay

    letters = _read(_filter(stage, reason, source, since, image_id), idle)
    try:
        report = asyncio.run(replay(_settings(), letters, dry_run=dry_run))
    except MugposError as exc:
        _fail(str(exc), EXIT_FATAL)
    for skipped in report["skipped"]:
        out.print(f"[yellow]skipped[/] {skipped['letter']}: {skipped['why']}", highlight=False)
    verb = "would replay" if dry_run else "replayed"
    where = ", ".join(f"{n} to {topic}" for topic, n in sorted(report["topics"].items())) or "nothing"
    out.print(f"{verb} {report['replayed']} of {len(letters)} dead letter(s): {where}", highlight=False)
    print(json.dumps(report))
    if report["skipped"]:
        raise typer.Exit(EXIT_PARTIAL)
