"""Detection benchmark: bare model vs. the full pipeline vs. a naive per-message baseline.

Measures, on the same images and the same weights:

1. ``bare``: the model alone on preloaded, letterboxed tensors at the configured batch size;
2. ``pipeline``: broker + S3 + decode + model through a real ``mugpos worker --role detect``,
   images/s at saturating load and end-to-end latency percentiles at low and saturating load;
3. ``naive``: one Ultralytics ``predict`` call per image, no batching.

Needs the local services (``make services``). Prints a table and one JSON line.
Usage: ``python bench/detect_bench.py [--images 64] [--batch 32] [--imgsz 640] [--device auto]
[--letterbox square|rect]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mugpos.core.settings import Settings, load_settings, settings_env  # noqa: E402
from mugpos.core.topics import ensure_topics  # noqa: E402
from mugpos.models.detector import Detector  # noqa: E402
from mugpos.models.imaging import decode_image  # noqa: E402
from mugpos.streams.consumer import consume_events  # noqa: E402
from mugpos.streams.processes import stop_process  # noqa: E402
from mugpos.streams.producer import ImageProducer  # noqa: E402

console = Console(stderr=True)


def make_images(count: int, seed: int) -> list[bytes]:
    """Photo-sized JPEGs with shapes on textured backgrounds; unique content so no cache hit."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        h, w = 480, 640
        base = rng.integers(60, 200, size=3)
        img = np.clip(base + rng.normal(0, 18, size=(h, w, 3)), 0, 255).astype(np.uint8)
        for _ in range(int(rng.integers(2, 6))):
            x, y = int(rng.integers(0, w - 120)), int(rng.integers(0, h - 120))
            img[y : y + int(rng.integers(40, 120)), x : x + int(rng.integers(40, 120))] = rng.integers(0, 255, 3)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def bench_bare(detector: Detector, images: list[bytes], batch: int) -> float:
    prepared = [detector.prepare(decode_image(data, 50_000_000)) for data in images]
    detector.infer(prepared[:batch])  # warm
    t0 = time.perf_counter()
    for i in range(0, len(prepared), batch):
        detector.infer(prepared[i : i + batch])
    return len(prepared) / (time.perf_counter() - t0)


def bench_naive(weights: str, images: list[bytes], imgsz: int, device: str) -> float:
    from ultralytics import YOLO

    model = YOLO(weights)
    dev = None if device == "auto" else device
    arrays = [np.ascontiguousarray(decode_image(data, 50_000_000)[:, :, ::-1]) for data in images]  # BGR
    model.predict(arrays[0], imgsz=imgsz, device=dev, verbose=False)
    t0 = time.perf_counter()
    for arr in arrays:
        model.predict(arr, imgsz=imgsz, device=dev, verbose=False)
    return len(arrays) / (time.perf_counter() - t0)


def worker_env(settings: Settings, port: int) -> dict[str, str]:
    """The bench's worker: these settings, no Redis (every image must really run), a quick group join."""
    return settings_env(settings, MUGPOS_REDIS_URL="", MUGPOS_SESSION_TIMEOUT_S="4", MUGPOS_WEB_PORT=str(port))


async def run_phase(settings: Settings, images: list[bytes], rate: float | None, tag: str) -> dict[str, float]:
    """Upload first (not timed), then produce events at ``rate``/s (None = all at once); time the results."""
    async with ImageProducer(settings) as producer:
        uris = [await producer.store.put(f"bench/{tag}/{i}.jpg", data, "image/jpeg") for i, data in enumerate(images)]
        sent: dict[str, float] = {}
        done: dict[str, float] = {}

        async def consume() -> None:
            async for item in consume_events(settings, "detections", from_beginning=True, timeout_s=300):
                key = (item.key or b"").decode()
                if key in sent and key not in done:
                    done[key] = time.perf_counter()
                if len(done) == len(images):
                    return

        reader = asyncio.create_task(consume())
        await asyncio.sleep(1.0)
        t0 = time.perf_counter()
        for i, uri in enumerate(uris):
            image_id = f"{tag}-{i}"
            sent[image_id] = time.perf_counter()
            event = {"image_id": image_id, "uri": uri, "source": "bench", "captured_at": datetime.now(UTC)}
            await producer.send_event(event)
            if rate:
                await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
        await asyncio.wait_for(reader, 600)
    latencies = [(done[k] - sent[k]) * 1000 for k in sent]
    elapsed = max(done.values()) - t0
    return {
        "images_per_s": len(images) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
    }


async def bench_pipeline(settings: Settings, images: list[bytes], low_rate: float, low_count: int) -> dict[str, dict]:
    await ensure_topics(settings)
    port = 16000 + int(uuid.uuid4().int % 2000)
    log = open(ROOT / ".run" / "bench-worker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "mugpos.cli", "worker", "--role", "detect"],
        env=worker_env(settings, port),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        # Each phase gets content never seen before, so the worker's result cache cannot help.
        seed = int(time.time())
        await run_phase(settings, make_images(settings.batch_max, seed + 1), None, "warm")  # model load, warm-up
        low = await run_phase(settings, make_images(low_count, seed + 2), low_rate, "low")
        high = await run_phase(settings, images, None, "sat")
    finally:
        stop_process(proc, timeout_s=30)
        log.close()
    return {"low": low, "saturating": high}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--letterbox", choices=("square", "rect"), default="square")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--weights", default=str(ROOT / "models" / "weights" / "yolo26n.pt"))
    parser.add_argument(
        "--head",
        default=str(ROOT / "models" / "weights" / "mugpos-coaster-head.pt"),
        help="second head (the service default); '' for the weights' own head only",
    )
    parser.add_argument("--low-rate", type=float, default=1.0, help="images/s of the low-load phase")
    parser.add_argument("--low-count", type=int, default=10)
    args = parser.parse_args()
    (ROOT / ".run").mkdir(exist_ok=True)

    settings = load_settings(
        env_file=ROOT / ".env",
        topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.",
        images_partitions=4,
        partitions=2,
        batch_max=args.batch,
        batch_wait_ms=50,
        image_size=args.imgsz,
        letterbox=args.letterbox,
        model=args.weights,
        head=args.head,
        device=args.device,
    )
    detector = Detector(
        args.weights, device=args.device, image_size=args.imgsz, rect=args.letterbox == "rect", head=args.head or None
    )
    device_name = detector.info["device"]
    console.print(f"device {device_name}, {args.images} images, batch {args.batch}, {args.imgsz}px {args.letterbox}")
    images = make_images(args.images, seed=int(time.time()))
    bare = bench_bare(detector, images, args.batch)
    console.print(f"bare model: {bare:.2f} images/s")
    naive = bench_naive(args.weights, images, args.imgsz, args.device)
    console.print(f"naive baseline: {naive:.2f} images/s")
    del detector
    pipe = asyncio.run(bench_pipeline(settings, images, args.low_rate, args.low_count))

    model = Path(args.weights).stem + (f"+{Path(args.head).stem}" if args.head else "")
    title = f"detection benchmark ({device_name}, {model}, {args.imgsz}px {args.letterbox}, batch {args.batch})"
    table = Table(title=title)
    for col in ("mode", "images/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(col, justify="right" if col != "mode" else "left")
    table.add_row("bare model (preloaded tensors)", f"{bare:.2f}", "", "", "")
    for name, row in (("pipeline, low load", pipe["low"]), ("pipeline, saturating", pipe["saturating"])):
        table.add_row(
            name, f"{row['images_per_s']:.2f}", f"{row['p50_ms']:.0f}", f"{row['p95_ms']:.0f}", f"{row['p99_ms']:.0f}"
        )
    table.add_row("naive (predict per message)", f"{naive:.2f}", "", "", "")
    Console().print(table)
    ratio = pipe["saturating"]["images_per_s"] / bare
    result = {
        "bench": "detect",
        "device": device_name,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "images": args.images,
        "batch": args.batch,
        "imgsz": args.imgsz,
        "letterbox": args.letterbox,
        "weights": Path(args.weights).name,
        "head": Path(args.head).name if args.head else None,
        "bare_images_per_s": round(bare, 3),
        "naive_images_per_s": round(naive, 3),
        "pipeline": {k: {m: round(v, 3) for m, v in row.items()} for k, row in pipe.items()},
        "ratio_pipeline_bare": round(ratio, 3),
        "speedup_vs_naive": round(pipe["saturating"]["images_per_s"] / naive, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
