"""``mugpos cameras``: set, list and remove per-camera configuration (an extension loaded by ``mugpos.cli.main``).

A camera's configuration (scale, table outline, named zones) lives on the compacted cameras topic,
which every analyze worker follows, so ``set`` and ``rm`` apply to the next frames without a
restart. Polygons are pixel points of the camera's frames, written ``"x,y x,y x,y ..."``. Exit
codes follow the main CLI: 0 success, 1 partial (``rm`` of an unknown camera), 2 bad input or
services down.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mugpos.cli.rules import EXIT_PARTIAL, _fail, _read_text, _run, _settings

cameras_cli = typer.Typer(
    help="Per-camera configuration: scale, table outline and named zones (for rules like 'in zone laptop').",
    no_args_is_help=True,
)
MAX_CONFIG_BYTES = 256 * 1024


def register(cli: typer.Typer) -> None:
    cli.add_typer(cameras_cli, name="cameras")


def _zone(spec: str) -> dict[str, Any]:
    from mugpos.core.cameras import parse_polygon

    name, sep, points = spec.partition("=")
    if not sep:
        _fail(f'--zone {spec!r}: expected NAME="x,y x,y x,y"')
    return {"name": name.strip(), "polygon": [list(p) for p in parse_polygon(points, f"zone {name.strip()}")]}


@cameras_cli.command("set")
def set_camera(
    source: Annotated[str, typer.Argument(help="The camera: the source its image events carry.")],
    px_per_cm: Annotated[float | None, typer.Option("--px-per-cm", help="Pixels per centimetre on the table.")] = None,
    table: Annotated[str | None, typer.Option(help='Outline of the table top, "x,y x,y x,y ..." (pixels).')] = None,
    zone: Annotated[
        list[str], typer.Option("--zone", "-z", help='A named zone, NAME="x,y x,y x,y ..." (repeatable).')
    ] = [],  # noqa: B006
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="The configuration as JSON ('-' reads stdin).")
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Keep what is stored and not given here (zones are replaced by name).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and print; store nothing.")] = False,
) -> None:
    """Store a camera's configuration (replacing the stored one unless --merge); prints its JSON."""
    from mugpos.core.cameras import CameraConfigError, config_from_obj, config_to_json
    from mugpos.storage.cameras import CameraStore

    try:
        body: dict[str, Any] = {}
        if file is not None:
            try:
                loaded = json.loads(_read_text(file, "camera JSON", MAX_CONFIG_BYTES))
            except ValueError as exc:
                _fail(f"{file}: not JSON: {exc}")
            if not isinstance(loaded, dict):
                _fail(f"{file}: expected a JSON object")
            body = loaded
        if px_per_cm is not None:
            body["px_per_cm"] = px_per_cm
        if table is not None:
            from mugpos.core.cameras import parse_polygon

            body["table"] = [list(p) for p in parse_polygon(table, "table")]
        if zone:
            body["zones"] = [*body.get("zones", []), *(_zone(z) for z in zone)]
        settings = _settings()
        store = CameraStore(settings)
        if merge:
            stored = _run(store.read()).get(source)
            if stored is not None:
                old = config_to_json(stored.config)
                given = {z["name"] for z in body.get("zones", []) if isinstance(z, dict)}
                kept = [z for z in old["zones"] if z["name"] not in given]
                body = {
                    "px_per_cm": old["px_per_cm"],
                    "table": old["table"],
                    **body,
                    "zones": [*kept, *body.get("zones", [])],
                }
        config = config_from_obj(body, source=source)
    except CameraConfigError as exc:
        _fail(f"invalid camera configuration: {exc}")
    sys.stdout.write(json.dumps(config_to_json(config), ensure_ascii=False) + "\n")
    if dry_run:
        Console(stderr=True).print(f"configuration of {source} is valid (not stored: --dry-run)", highlight=False)
        return
    _run(store.put(config))
    Console(stderr=True).print(f"stored the configuration of {source} on {settings.topic('cameras')}", highlight=False)


@cameras_cli.command("list")
def list_cameras(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON configuration per line.")] = False,
) -> None:
    """Read the cameras topic from the beginning and show every configuration."""
    from mugpos.core.cameras import config_to_json
    from mugpos.storage.cameras import CameraStore

    settings = _settings()
    registry = _run(CameraStore(settings).read())
    err = Console(stderr=True)
    for source, problem in sorted(registry.invalid.items()):
        err.print(f"[yellow]invalid record[/] {source}: {problem}", highlight=False, soft_wrap=True)
    configs = sorted(registry.configs, key=lambda c: c.source)
    if as_json:
        for config in configs:
            sys.stdout.write(json.dumps(config_to_json(config), ensure_ascii=False) + "\n")
        return
    view = Table(title=f"{len(configs)} camera(s) on {settings.topic('cameras')}")
    for column in ("source", "px/cm", "table", "zones", "updated"):
        view.add_column(column, overflow="fold")
    for config in configs:
        zones = ", ".join(f"{z.name} ({len(z.polygon)} points)" for z in config.zones)
        view.add_row(
            config.source,
            "-" if config.px_per_cm is None else f"{config.px_per_cm:g}",
            "-" if config.table is None else f"{len(config.table)} points",
            zones or "-",
            config_to_json(config)["updated_at"],
        )
    Console().print(view)


@cameras_cli.command("rm")
def remove(
    source: Annotated[str, typer.Argument(help="The camera whose configuration to remove.")],
    force: Annotated[bool, typer.Option("--force", help="Write the tombstone even if none is stored.")] = False,
) -> None:
    """Remove a camera's configuration (a tombstone on the compacted cameras topic)."""
    from mugpos.core.cameras import SOURCE_ID
    from mugpos.storage.cameras import CameraStore

    if not SOURCE_ID.fullmatch(source):
        _fail(f"{source!r} is not a configurable source id")
    settings = _settings()
    store = CameraStore(settings)
    if not force:
        registry = _run(store.read())
        if registry.get(source) is None and source not in registry.invalid:
            _fail(f"no configuration for {source!r} on {settings.topic('cameras')}", EXIT_PARTIAL)
    _run(store.delete(source))
    Console(stderr=True).print(f"removed the configuration of {source}", highlight=False)
