"""What the windows' least overlap costs at 8x on the toy: whole generations end to end, interleaved.

    OMP_WAIT_POLICY=PASSIVE python scripts/bench_overlap_8x.py      # results/bench/overlap-8x.json (about 8 minutes)

The defaults and three local-only steps with feathered splice weights (the window prompt's schedule; its prompt
costs one more text encoding, nothing per step), each with the minimum-overlap windows (9 a side at 8x) and with
``window_overlap=4`` (11 a side), timed by :func:`resdit.bench.bench_generations` (median of 3 repeats, one thread, 20
steps), each row with the cost model's FLOP ratio beside it. The ratios to direct and to two-stage of the defaults
of the 9-window defaults are in ``results/bench/generations-2026-12-01.json`` (the defaults now: ``generations-2026-12-08.json``); this run times the overlap against its own 9-window row.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# "resdit" names the minimum-overlap windows, the defaults when this ran (mode resdit's default is now a quarter of
# the window, the same windows as "resdit@overlap4" at 8x)
CASES = {
    "resdit": dict(mode="resdit", window_overlap=1),
    "resdit@overlap4": dict(mode="resdit", window_overlap=4),
    "resdit+local_steps3+feather": dict(mode="resdit", local_steps=3, splice="feather", window_overlap=1),
    "resdit+local_steps3+feather@overlap4": dict(mode="resdit", local_steps=3, splice="feather", window_overlap=4),
}
PAIRS = (("resdit@overlap4", "resdit"), ("resdit+local_steps3+feather@overlap4", "resdit+local_steps3+feather"))


def main() -> int:
    import torch

    from resdit.bench import bench_generations
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance
    from resdit.toy import load_pipeline

    torch.set_num_threads(1)
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    rows = bench_generations(pipe, scales=(8,), steps=20, repeats=3, cases=CASES)
    by = {r["mode"]: r for r in rows}
    ratios = {f"{a}/{b}": {"measured": by[a]["seconds"] / by[b]["seconds"],
                           "flop_model": by[a]["predicted_ratio"] / by[b]["predicted_ratio"]} for a, b in PAIRS}
    for name, r in ratios.items():
        print(f"{name}: measured {r['measured']:.3f}, FLOP model {r['flop_model']:.3f}")
    record = {"provenance": provenance(config={"scale": 8, "steps": 20, "repeats": 3, "threads": 1, "cases": CASES}),
              "results": rows, "ratios": ratios}
    with atomic_write(ROOT / "results/bench/overlap-8x.json") as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
