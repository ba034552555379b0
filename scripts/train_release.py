"""Build the release coaster head in one go: render the data, train the head on the frozen trunk, evaluate, card.

Uses the library functions behind ``mugpos synth|train|eval`` (no settings, broker or web stack),
so it runs on a bare GPU machine that has only torch, Ultralytics and scikit-image. Every number
in the card comes from this run; a second run with the same arguments renders the same scenes.

    python scripts/train_release.py --out models/weights/mugpos-coaster-head.pt --imgsz 640 --hours 0.95
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mugpos.training import synth  # noqa: E402
from mugpos.training.card import update_card  # noqa: E402
from mugpos.training.evaluation import card_section, evaluate  # noqa: E402
from mugpos.training.photos import backdrop_photos  # noqa: E402
from mugpos.training.train import DEFAULT_BASE, DEFAULT_OUT, train  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path(".run/release"), help="Data sets and training runs.")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--base", type=Path, default=DEFAULT_BASE)
    p.add_argument("--count", type=int, default=3400, help="Training scenes (train + val).")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--negatives", type=float, default=0.4)
    p.add_argument("--no-backdrops", action="store_true", help="Do not crop the shipped backdrop photos in.")
    p.add_argument("--holdout-count", type=int, default=1000)
    p.add_argument("--holdout-seed", type=int, default=7777)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--hours", type=float, default=None, help="Wall-clock budget for training (Ultralytics 'time').")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    p.add_argument("--data", type=Path, action="append", default=[], help="Labelled photo set to mix in (YOLO).")
    p.add_argument("--start", type=Path, default=None, help="An earlier run's best.pt to continue training from.")
    p.add_argument("--warmup-epochs", type=float, default=0.5)
    p.add_argument("--note", action="append", default=[], help="A line for the model card (repeatable).")
    args = p.parse_args()

    backdrops = [] if args.no_backdrops else backdrop_photos()
    started = time.perf_counter()
    data = args.work / f"train-s{args.seed}"
    holdout = args.work / f"holdout-s{args.holdout_seed}"
    renders = os.cpu_count() or 1
    m = synth.synthesize(
        data, args.count, seed=args.seed, val_fraction=0.05, workers=renders, negatives=args.negatives,
        backdrops=backdrops,
    )  # fmt: skip
    print(f"train set: {m['splits']} in {m['seconds']} s, {len(backdrops)} backdrop photo(s)", flush=True)
    h = synth.synthesize(
        holdout, args.holdout_count, seed=args.holdout_seed, style="holdout", val_fraction=1.0, workers=renders,
        negatives=0.1,
    )  # fmt: skip
    print(f"holdout set: {h['splits']} in {h['seconds']} s", flush=True)

    extra = {"time": args.hours} if args.hours else {}
    card = train(
        data, args.out, base=args.base, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
        device=args.device, workers=args.workers, run_dir=args.work / "runs", extra=extra, photos=args.data,
        start=args.start, warmup_epochs=args.warmup_epochs,
    )  # fmt: skip
    print(f"trained: {card['training']['epochs_run']} epoch(s) in {card['training']['seconds']} s", flush=True)
    report = evaluate(
        args.base, holdout, head=args.out, imgsz=args.imgsz, device=args.device, baseline=args.base, letterbox="rect"
    )
    (args.work / "holdout-report.json").write_text(json.dumps(report, indent=2) + "\n")
    update_card(args.out, evaluation=card_section(report), notes=list(args.note))
    photos = {k: v for k, v in report["photos"].items() if k != "images"}
    seconds = round(time.perf_counter() - started, 1)
    print(json.dumps({"targets": report["targets"], "photos": photos, "seconds": seconds}))
    return 0 if report["targets"]["all_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
