"""Two-head cost: the stock COCO model alone vs. the same trunk with the coaster head, same batch.

Both detectors run the production path (``Detector.infer``: one trunk pass, NMS per head, merge)
on the same letterboxed images, batch by batch, alternating so that a busy machine slows both
alike. Reports the median seconds per image and the ratio two-head / stock at each batch size;
the design bound is 1.35x on CPU. Prints a table and one JSON line.

Usage: ``python bench/heads_bench.py [--batches 1 8] [--repeats 7] [--imgsz 640] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.detect_bench import make_images  # noqa: E402
from mugpos.models.detector import Detector  # noqa: E402
from mugpos.models.imaging import decode_image  # noqa: E402

BOUND = 1.35


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--letterbox", choices=("square", "rect"), default="rect")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default=str(ROOT / "models" / "weights" / "yolo26n.pt"))
    parser.add_argument("--head", default=str(ROOT / "models" / "weights" / "mugpos-coaster-head.pt"))
    args = parser.parse_args()

    rect = args.letterbox == "rect"
    stock = Detector(args.weights, device=args.device, image_size=args.imgsz, rect=rect)
    both = Detector(args.weights, device=args.device, image_size=args.imgsz, rect=rect, head=args.head)
    images = [decode_image(data, 50_000_000) for data in make_images(max(args.batches), seed=7)]
    prepared = [stock.prepare(image) for image in images]  # same letterbox for both
    rows = []
    for batch in args.batches:
        chunk = prepared[:batch]
        for det in (stock, both):
            det.infer(chunk)  # warm
        times: dict[str, list[float]] = {"stock": [], "two_heads": []}
        for _ in range(args.repeats):
            for name, det in (("stock", stock), ("two_heads", both)):
                t0 = time.perf_counter()
                det.infer(chunk)
                times[name].append((time.perf_counter() - t0) / batch)
        s, t = statistics.median(times["stock"]), statistics.median(times["two_heads"])
        rows.append({"batch": batch, "stock_ms": round(s * 1000, 2), "two_heads_ms": round(t * 1000, 2),
                     "ratio": round(t / s, 3)})  # fmt: skip

    device = str(stock.device)
    table = Table(title=f"two-head cost ({device}, {args.imgsz}px {args.letterbox}, median of {args.repeats})")
    for col in ("batch", "stock ms/image", "two heads ms/image", "ratio", f"≤ {BOUND}"):
        table.add_column(col, justify="right")
    for r in rows:
        ok = "yes" if r["ratio"] <= BOUND else "NO"
        table.add_row(str(r["batch"]), f"{r['stock_ms']:.1f}", f"{r['two_heads_ms']:.1f}", f"{r['ratio']:.3f}", ok)
    Console().print(table)
    print(json.dumps({
        "bench": "heads", "device": device, "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "torch_threads": __import__("torch").get_num_threads(), "imgsz": args.imgsz,
        "letterbox": args.letterbox, "repeats": args.repeats, "head": Path(args.head).name, "bound": BOUND,
        "rows": rows, "within_bound": all(r["ratio"] <= BOUND for r in rows),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
