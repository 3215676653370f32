"""What the global-only phase's length costs on the toy: whole generations at 4x and 8x, end to end, interleaved.

    OMP_WAIT_POLICY=PASSIVE python scripts/bench_global_phase.py    # results/bench/global-phase.json (about 11 minutes)

Direct inference, the defaults (6 global-only steps of 20), the defaults with 2 and with none, and two-stage, timed
by :func:`resdit.bench.bench_generations` (one repeat, one thread, 20 steps; direct at 8x alone takes about five
minutes), each row with its ratios to direct and to two-stage of the same run and the cost model's FLOP ratio.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = {
    "direct": dict(mode="direct"),
    "resdit": dict(mode="resdit"),
    "resdit@global2": dict(mode="resdit", global_steps=2),
    "resdit@global0": dict(mode="resdit", global_steps=0),
    "two_stage": dict(mode="two_stage"),
}


def main() -> int:
    import torch

    from resdit.bench import bench_generations
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance
    from resdit.toy import load_pipeline

    torch.set_num_threads(1)
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    rows = bench_generations(pipe, scales=(4, 8), steps=20, repeats=1, cases=CASES)
    for r in rows:
        print(f"{r['scale']:g}x {r['mode']:>15s}  {r['seconds']:7.1f} s  to direct {r['ratio_to_direct']:.3f}  "
              f"to two-stage {r['ratio_to_two_stage']:.3f}  FLOP model {r['predicted_ratio']:.3f}")
    record = {"provenance": provenance(config={"scales": [4, 8], "steps": 20, "repeats": 1, "threads": 1,
                                               "cases": CASES}), "results": rows}
    with atomic_write(ROOT / "results/bench/global-phase.json") as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
