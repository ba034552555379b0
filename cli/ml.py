"""``mugpos synth``, ``mugpos train``, ``mugpos eval``: build and prove the mug / coaster / surface detector.

A CLI extension (see ``EXTENSIONS`` in ``mugpos.cli.main``). The heavy libraries (torch,
Ultralytics) are imported inside the commands, so ``mugpos --help`` stays fast.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

err = Console(stderr=True)
EXIT_PARTIAL, EXIT_FATAL = 1, 2


def _fail(message: str, code: int = EXIT_FATAL) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _backdrop_paths(spec: str | None) -> list[Path]:
    """``installed`` -> the shipped backdrop photos; a folder -> its JPEG/PNG files, sorted; None -> none."""
    if spec is None:
        return []
    if spec == "installed":
        from mugpos.training.photos import backdrop_photos

        found = backdrop_photos()
        if not found:
            _fail("--backdrops installed: no backdrop photos installed (they ship with scikit-image)")
        return found
    folder = Path(spec)
    if not folder.is_dir():
        _fail(f"--backdrops must be 'installed' or a folder, got {spec!r}")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not found:
        _fail(f"--backdrops {folder}: no .jpg/.jpeg/.png files in it")
    return found


def synth(
    out: Annotated[Path, typer.Argument(help="Output folder (images/, labels/, data.yaml, manifest.json).")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Number of scenes.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Data set seed: same seed, same scenes.")] = 0,
    style: Annotated[
        str, typer.Option(help="Palette and texture set: train, or holdout (never trained on).")
    ] = "train",
    val_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of scenes in the val split.")] = 0.1,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Rendering processes.")] = 1,
    negatives: Annotated[
        float,
        typer.Option(min=0.0, max=0.9, help="Share of scenes with no table (people, streets, rooms), unlabelled."),
    ] = 0.1,
    contact_sheet: Annotated[
        Path | None, typer.Option(help="Also write a PNG of the first scenes with their boxes drawn.")
    ] = None,
    sheet_count: Annotated[int, typer.Option(min=1, max=64, help="Scenes on the contact sheet.")] = 8,
    backdrops: Annotated[
        str | None,
        typer.Option(
            help="Real photos to crop behind tables and into negatives: 'installed' (the backdrop set of "
            "models.photos, never the evaluation photos) or a folder of JPEG/PNG files."
        ),
    ] = None,
) -> None:
    """Render labelled table scenes (mug, coaster, surface) in YOLO format, with per-scene ground truth."""
    from mugpos.training import synth as synth_mod

    if style not in synth_mod.STYLES:
        _fail(f"--style must be one of {', '.join(synth_mod.STYLES)}, got {style!r}")
    backdrop_paths = _backdrop_paths(backdrops)
    step = max(1, count // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            err.print(f"rendered {done}/{total}", highlight=False)

    try:
        manifest = synth_mod.synthesize(
            out,
            count,
            seed=seed,
            style=style,
            val_fraction=val_fraction,
            workers=workers,
            progress=progress,
            negatives=negatives,
            backdrops=backdrop_paths,
        )
    except synth_mod.DatasetError as exc:
        _fail(str(exc), EXIT_PARTIAL)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    if contact_sheet is not None:
        synth_mod.contact_sheet(out, contact_sheet, count=sheet_count)
        err.print(f"contact sheet: {contact_sheet}", highlight=False)
    err.print(
        f"{count} scene(s) in {manifest['seconds']} s ({manifest['images_per_second']} images/s), "
        f"splits {manifest['splits']}, labels checked: {manifest['check']}",
        highlight=False,
        soft_wrap=True,
    )
    print(str(Path(out) / "data.yaml"))


def train(
    scenes: Annotated[Path, typer.Argument(help="Rendered data set folder (from `mugpos synth`) or its data.yaml.")],
    out: Annotated[
        Path, typer.Option(help="Where the head file goes; the model card is written beside it (.md).")
    ] = Path("models/weights/mugpos-coaster-head.pt"),
    base: Annotated[Path, typer.Option(help="The trunk, frozen (the COCO YOLO26n); the head runs on it.")] = Path(
        "models/weights/yolo26n.pt"
    ),
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="Your own labelled photos, mixed with the scenes: a folder in YOLO format (images/ and labels/, "
            "optionally train/ and val/ inside, classes 0 mug, 1 coaster, 2 surface), as Label Studio, CVAT or "
            "Roboflow export it, or the review/ folder of the store. Repeatable.",
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 20,
    imgsz: Annotated[int, typer.Option(min=32, help="Training image size (multiple of 32).")] = 320,
    batch: Annotated[int, typer.Option(min=1)] = 16,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N.")] = "auto",
    workers: Annotated[int, typer.Option(min=0, help="Data loader workers.")] = 0,
    run_dir: Annotated[Path, typer.Option(help="Ultralytics run folder.")] = Path(".run/train"),
    name: Annotated[str, typer.Option(help="Run name inside the run folder.")] = "coaster",
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    patience: Annotated[int, typer.Option(min=1, help="Stop after this many epochs without improvement.")] = 50,
    evaluate: Annotated[bool, typer.Option(help="Score the val split into the card afterwards.")] = True,
    cache: Annotated[bool, typer.Option(help="Keep decoded training images in RAM.")] = True,
    warmup_epochs: Annotated[float, typer.Option(min=0.0, help="Learning-rate warm-up, in epochs.")] = 0.5,
    hours: Annotated[
        float | None, typer.Option(min=0.01, help="Wall-clock budget; Ultralytics fits the epochs into it.")
    ] = None,
) -> None:
    """Train the mug / coaster / surface head on the frozen COCO trunk; write the head file and its card."""
    if imgsz % 32:
        _fail(f"--imgsz must be a multiple of 32, got {imgsz}")
    from mugpos.training.train import train as run_training

    started = time.perf_counter()
    try:
        card = run_training(
            scenes, out, base=base, photos=list(data or []), epochs=epochs, imgsz=imgsz, batch=batch,
            device=device, workers=workers, run_dir=run_dir, name=name, seed=seed, patience=patience, cache=cache,
            evaluate_after=evaluate, warmup_epochs=warmup_epochs, extra={"time": hours} if hours else None,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    elapsed = time.perf_counter() - started
    val = card.get("metrics", {}).get("synthetic_val", {})
    per = ", ".join(f"{k} {v['map50']:.3f}" for k, v in val.get("per_class", {}).items())
    err.print(
        f"trained {card['training']['epochs_run']} epoch(s) in {elapsed:.0f} s on {card['training']['device']}; "
        f"val mAP50 (head alone) {per or 'not evaluated'}; head {out} sha256 {card['sha256'][:12]}",
        highlight=False,
        soft_wrap=True,
    )
    print(str(out))


def evaluate(
    weights: Annotated[Path, typer.Argument(help="Detector weights (.pt), or a head file (run on --base).")],
    data: Annotated[Path, typer.Argument(help="Held-out data set from `mugpos synth` (other seed and style).")],
    base: Annotated[Path, typer.Option(help="The trunk a head file runs on (ignored for a plain checkpoint).")] = Path(
        "models/weights/yolo26n.pt"
    ),
    split: Annotated[str, typer.Option(help="Split to score.")] = "val",
    imgsz: Annotated[int, typer.Option(min=32, help="Inference size (multiple of 32).")] = 320,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    conf: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Confidence threshold for the positioning outcome.")
    ] = 0.25,
    edge_cm: Annotated[
        list[float] | None, typer.Option(help="'Within N cm of the edge' thresholds, repeatable [default: 2, 5].")
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the full report as JSON here.")] = None,
    card: Annotated[
        bool, typer.Option(help="Add the results to the model card beside the weights, if there is one.")
    ] = True,
    baseline: Annotated[
        Path | None, typer.Option(help="Also run these weights (e.g. the stock COCO model) on the real photos.")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when an acceptance target is missed.")] = False,
    letterbox: Annotated[
        str, typer.Option(help="square, or rect (the service default, MUGPOS_LETTERBOX) for positioning and photos.")
    ] = "square",
) -> None:
    """mAP per class, on_coaster and edge accuracy against the renderer's truth, and phantoms on real photos."""
    if not weights.is_file():
        _fail(f"weights not found: {weights}")
    if imgsz % 32:
        _fail(f"--imgsz must be a multiple of 32, got {imgsz}")
    from mugpos.models.heads import HeadError, is_head_file
    from mugpos.training.evaluation import evaluate as run_eval

    head: Path | None = None
    if is_head_file(weights):
        head, weights = weights, base
        if not weights.is_file():
            _fail(f"base weights not found: {weights} (run `make weights`)")
    try:
        result = run_eval(
            weights, data, head=head, split=split, imgsz=imgsz, device=device, conf=conf, edge_cm=edge_cm or [2.0, 5.0],
            baseline=baseline, letterbox=letterbox,
        )  # fmt: skip
    except (FileNotFoundError, ValueError, HeadError) as exc:
        _fail(str(exc))
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result, indent=2) + "\n")
    if card:
        from mugpos.training.card import card_path, update_card
        from mugpos.training.evaluation import card_section

        described = head or weights
        if card_path(described).is_file():
            update_card(described, evaluation=card_section(result))
    _print_summary(result)
    if strict and not result["targets"]["all_met"]:
        raise typer.Exit(EXIT_PARTIAL)


def _print_summary(result: dict[str, Any]) -> None:
    det, pos = result["detection"], result["positioning"]
    print(f"detection on {det['images']} image(s), split {det['split']}, {result['imgsz']} px:")
    print(f"(positioning and photos letterboxed {result['letterbox']})")
    for name, m in det["per_class"].items():
        scores = f"mAP50 {m['map50']:.3f}  mAP50-95 {m['map50_95']:.3f}"
        print(f"  {name:8s} {scores}  P {_num(m['precision'])}  R {_num(m['recall'])}")
    print(f"positioning over {pos['mugs']} mug(s) (mug recall {pos['mug_recall_iou50']}):")
    for key, value in pos["accuracy"].items():
        ceiling = pos["ceiling_with_true_boxes"].get(key)
        print(f"  {key:45s} {value}" + (f"   (true boxes: {ceiling})" if ceiling is not None else ""))
    print("real photos (mug / coaster / surface detections):")
    for name, p in result["photos"]["images"].items():
        c = p["counts"]
        print(f"  {name:22s} {c['mug']} / {c['coaster']} / {c['surface']}   ({p['expected']})")
    ph = result["photos"]
    print(
        f"  phantom mugs or coasters: {ph['phantom_mugs_or_coasters']}; "
        f"real cups found: {ph['real_cups_found']} of {ph['real_cups']}"
    )
    t = result["targets"]
    print(
        "targets: "
        + ", ".join(f"{k} {v['value']} {'met' if v['met'] else 'MISSED'}" for k, v in t.items() if isinstance(v, dict))
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def register(cli: typer.Typer) -> None:
    """Add the synth, train and eval commands to the mugpos CLI."""
    cli.command("synth")(synth)
    cli.command("train")(train)
    cli.command("eval")(evaluate)
