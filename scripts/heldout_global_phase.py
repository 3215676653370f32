"""A shorter global-only phase on held-out prompts: ``eval-toy`` at 4x with 0 and 2 global-only steps of 20 against
the defaults' 6, paired image by image (the prompts and noise of seed 500, where the defaults read 0.66 of the base
size's drawn-object detail).

    resdit eval-toy --modes resdit --scales 4 --prompts 64 --seed 500 --global-steps 0 --threads 1 \\
        --out results/toy-v2/eval-resdit-detail-4x-global0.json
    resdit eval-toy --modes resdit --scales 4 --prompts 64 --seed 500 --global-steps 2 --threads 1 \\
        --out results/toy-v2/eval-resdit-detail-4x-global2.json
    python scripts/heldout_global_phase.py      # results/toy-v2/heldout-global-phase.json

The defaults' rows are ``eval-resdit-detail-4x.json`` (4x) and ``eval-resdit-detail-1x3x.json`` (the base size).
Per setting: correct, objects per image, drawn-object detail and its ratio to the base size's over the same images;
per shorter phase the paired difference of detail against the defaults over images both drew, with a 95 % BCa
interval from resampling images, and the same for the ratio (a percentile interval from resampling images).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "results" / "toy-v2"
FILES = {"defaults": "eval-resdit-detail-4x.json", "global0": "eval-resdit-detail-4x-global0.json",
         "global2": "eval-resdit-detail-4x-global2.json"}
BASE = "eval-resdit-detail-1x3x.json"


def _row(name: str, scale: float) -> dict:
    return next(r for r in json.loads((RESULTS / name).read_text())["rows"] if r["scale"] == scale)


def _values(row: dict) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in row["detail_per_image"]], dtype=float)


def main() -> int:
    from analysis.stats import bootstrap_ci
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    base = _values(_row(BASE, 1.0))
    rows = {k: _row(v, 4.0) for k, v in FILES.items() if (RESULTS / v).exists()}
    out = {"provenance": provenance(config={"files": FILES, "base": BASE, "seed": 500}), "settings": {}, "pairs": {}}
    rng = np.random.default_rng(0)
    for name, row in rows.items():
        v = _values(row)
        both = np.isfinite(v) & np.isfinite(base)
        idx = np.flatnonzero(both)
        boot = [np.mean(v[s]) / np.mean(base[s]) for s in (rng.choice(idx, len(idx)) for _ in range(2000))]
        out["settings"][name] = {"n": row["n"], "correct": row["correct"], "accuracy": row["accuracy"],
                                 "ci95_exact": row["ci95_exact"], "mean_count": row["mean_count"],
                                 "detail": row["detail"], "global_steps": row.get("global_steps", 6),
                                 "ratio": float(np.mean(v[both]) / np.mean(base[both])),
                                 "ratio_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                                 "seconds_per_image": row["seconds"] / row["n"]}
    for name in rows:
        if name == "defaults":
            continue
        a, b = _values(rows[name]), _values(rows["defaults"])
        both = np.isfinite(a) & np.isfinite(b)
        d = a[both] - b[both]
        lo, hi = bootstrap_ci(d)
        out["pairs"][f"{name}_minus_defaults"] = {"mean": float(d.mean()), "ci95": [lo, hi], "n": int(both.sum())}
    from resdit import ResDiTConfig
    from resdit.cost import FLUX_DEV_CONFIG, generation_flops

    out["flux_dev_flops_to_direct"] = []  # the cost model, 35 steps, 512 text tokens, base 1024^2 = 64x64 tokens
    for side in (3072, 4096):
        grid = (side // 16, side // 16)
        direct = generation_flops(FLUX_DEV_CONFIG, grid, (64, 64), 512, "direct", 35)
        out["flux_dev_flops_to_direct"].append({"side": side, **{
            name: generation_flops(FLUX_DEV_CONFIG, grid, (64, 64), 512, ResDiTConfig(mode="resdit", **kw), 35) / direct
            for name, kw in (("defaults", {}), ("global0", {"global_steps": 0}))}})
    with atomic_write(RESULTS / "heldout-global-phase.json") as f:
        f.write(dumps_strict(out, indent=1) + "\n")
    for name, s in out["settings"].items():
        print(f"{name:>9s}  correct {s['correct']}/{s['n']}  objects {s['mean_count']:.2f}  detail {s['detail']:.3f}  "
              f"ratio {s['ratio']:.3f} [{s['ratio_ci95'][0]:.3f}, {s['ratio_ci95'][1]:.3f}]")
    for name, p in out["pairs"].items():
        print(f"{name}: {p['mean']:+.4f} [{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}] over {p['n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
