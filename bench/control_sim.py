"""Benchmark: the scaling policy against a KEDA-style baseline on simulated load traces.

Replays six traces (steady, step, burst, diurnal, a stuck partition, sparse batches) through
``control.policy.ScalingPolicy`` and ``control.baseline.KedaBaseline`` on the same simulated
cluster (12 partitions, 20 images/s per worker, 20 s worker start-up, 3 s rebalances) and prints,
per trace, the seconds over the lag target and the GPU-seconds used, with the oracle lower bound of
GPU-seconds that keeps up with the load. Then one JSON line (for CI to parse). Deterministic: the
arrival noise is seeded. ``--sweep`` adds KEDA at other lagThresholds and a shorter scale-down
window; ``--check`` turns the target into an exit code.

    python bench/control_sim.py
    python bench/control_sim.py --sweep --seed 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from mugpos.control.baseline import KedaConfig
from mugpos.control.simulator import Comparison, SimConfig, compare, standard_traces


def _main_table(results: list[Comparison], cfg: SimConfig) -> Table:
    table = Table(
        title=(
            f"control policy vs KEDA-style baseline: {cfg.partitions} partitions, "
            f"{cfg.worker_rate:g} img/s per worker, {cfg.startup_s:g} s start-up, "
            f"target {cfg.target_lag_s:g} s, seed {cfg.seed}"
        )
    )
    for col in ("trace", "s over target\npolicy / KEDA", "GPU-s\npolicy / KEDA", "oracle\nGPU-s"):
        table.add_column(col, justify="left" if col == "trace" else "right")
    for col in ("max queue s\npolicy / KEDA", "changes\npolicy / KEDA", "$/1000 img\npolicy / KEDA", "verdict"):
        table.add_column(col, justify="right" if "verdict" not in col else "left")
    for c in results:
        p, b = c.policy, c.baseline
        if c.fewer_seconds_over and c.no_more_gpu:
            verdict = "[green]better, no more GPU[/]"
        elif c.fewer_seconds_over and c.baseline_short:
            verdict = f"[yellow]better, +{p.gpu_seconds / b.gpu_seconds - 1:.1%} GPU (KEDA below oracle)[/]"
        else:
            verdict = "[red]target missed[/]"
        table.add_row(
            c.trace.name,
            f"{p.seconds_over_target} / {b.seconds_over_target}",
            f"{p.gpu_seconds:,.0f} / {b.gpu_seconds:,.0f}",
            f"{c.oracle_gpu_seconds:,.0f}",
            f"{p.max_queue_s:.1f} / {b.max_queue_s:.1f}",
            f"{p.changes} / {b.changes}",
            f"{p.cost.per_1000_images or 0:.3f} / {b.cost.per_1000_images or 0:.3f}",
            verdict,
        )
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7, help="seed of the arrival noise (default 7)")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--worker-rate", type=float, default=20.0, help="true images/s of one worker")
    parser.add_argument("--startup-s", type=float, default=20.0, help="seconds from start to consuming")
    parser.add_argument("--target-lag-s", type=float, default=10.0)
    parser.add_argument("--duration-s", type=int, default=1800, help="length of each trace after warm-up")
    parser.add_argument("--gpu-hour-cost", type=float, default=2.5, help="$/GPU-hour for the cost column")
    parser.add_argument("--sweep", action="store_true", help="also run KEDA at other lagThresholds")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every trace meets the target")
    args = parser.parse_args()

    cfg = SimConfig(
        partitions=args.partitions,
        worker_rate=args.worker_rate,
        startup_s=args.startup_s,
        target_lag_s=args.target_lag_s,
        seed=args.seed,
        gpu_hour_cost=args.gpu_hour_cost,
    )
    traces = standard_traces(cfg.worker_rate, cfg.partitions, args.duration_s)
    started = time.perf_counter()
    results = compare(traces, cfg)
    console = Console()
    console.print(_main_table(results, cfg))
    console.print(
        "GPU-s: worker-seconds billed (start-up included). oracle: fewest workers whose usable capacity covers the "
        "nominal rate, each second. KEDA: lagThreshold = rate x target, HPA defaults (15 s sync, 300 s scale-down "
        "window, 30 s activation polling, 300 s cooldown)."
    )
    sweep: list[dict[str, object]] = []
    if args.sweep:
        variants = {
            "KEDA lagThreshold x0.25": KedaConfig.for_target(cfg.partitions, cfg.worker_rate * 0.25, cfg.target_lag_s),
            "KEDA lagThreshold x0.5": KedaConfig.for_target(cfg.partitions, cfg.worker_rate * 0.5, cfg.target_lag_s),
            "KEDA lagThreshold x2": KedaConfig.for_target(cfg.partitions, cfg.worker_rate * 2, cfg.target_lag_s),
            "KEDA 60 s scale-down window": KedaConfig.for_target(
                cfg.partitions, cfg.worker_rate, cfg.target_lag_s, scale_down_window_s=60.0
            ),
        }
        table = Table(title="KEDA variants: seconds over target / GPU-seconds (policy row for reference)")
        table.add_column("controller")
        for t in traces:
            table.add_column(t.name, justify="right")
        table.add_row("policy", *(f"{c.policy.seconds_over_target} / {c.policy.gpu_seconds:,.0f}" for c in results))
        for label, kcfg in variants.items():
            rows = compare(traces, cfg, keda_config=kcfg)
            table.add_row(label, *(f"{c.baseline.seconds_over_target} / {c.baseline.gpu_seconds:,.0f}" for c in rows))
            sweep.append({"variant": label, "results": [c.as_dict()["baseline"] for c in rows]})
        console.print(table)

    met = [c.fewer_seconds_over and (c.no_more_gpu or c.baseline_short) for c in results]
    summary = {
        "bench": "control_sim",
        "config": dataclasses.asdict(cfg) | {"duration_s": args.duration_s},
        "results": [c.as_dict() for c in results],
        "fewer_seconds_over_on_every_trace": all(c.fewer_seconds_over for c in results),
        "no_more_gpu_on_every_trace": all(c.no_more_gpu for c in results),
        "target_met_or_baseline_short_on_every_trace": all(met),
        "sweep": sweep,
        "wall_s": round(time.perf_counter() - started, 3),
    }
    print(json.dumps(summary), flush=True)
    return 0 if not args.check or all(c.fewer_seconds_over and c.no_more_gpu for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
