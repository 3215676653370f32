"""The quarter-window overlap on fresh held-out prompts: ``eval-toy`` of ``mode="resdit"`` with the minimum-overlap
windows (``--window-overlap 1``, the defaults before) and with a quarter of the window (``--window-overlap 4`` on the
toy's 16-token windows, the defaults now), at the toy scales where the two differ, paired image by image.

    resdit eval-toy --modes resdit --scales 3.5 5 6 --prompts 32 --seed 700 --window-overlap 1 --threads 1 \\
        --out results/toy-v2/eval-heldout700-overlap1-3x5-6x.json
    resdit eval-toy --modes resdit --scales 3.5 5 6 --prompts 32 --seed 700 --window-overlap 4 --threads 1 \\
        --out results/toy-v2/eval-heldout700-overlap4-3x5-6x.json
    resdit eval-toy --modes resdit --scales 8 --prompts 16 --seed 700 --window-overlap 1 --threads 1 \\
        --out results/toy-v2/eval-heldout700-overlap1-8x.json
    resdit eval-toy --modes resdit --scales 8 --prompts 16 --seed 700 --window-overlap 4 --threads 1 \\
        --out results/toy-v2/eval-heldout700-overlap4-8x.json
    python scripts/heldout_overlap.py      # results/toy-v2/heldout-overlap.json

Seed 700's prompts and noise, which chose nothing about the overlap (the study's 16 prompts did). Per scale and
setting: correct, objects per image, pieces of the prompted colour per image, drawn-object detail and its ratio to
the base size's over the same images (the 1x row of ``eval-heldout700-window-prompt.json``, same prompts and noise),
ground detail; the paired difference quarter - minimum of detail, pieces and ground detail over images both read,
with a 95 % BCa interval from resampling images. The 8x run with the minimum overlap repeats the committed
``eval-heldout700-defaults-8x.json`` (same command, before the default moved): its largest difference in detail is
recorded as ``reproduction_8x``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "results" / "toy-v2"
FILES = {"minimum": ("eval-heldout700-overlap1-3x5-6x.json", "eval-heldout700-overlap1-8x.json"),
         "quarter": ("eval-heldout700-overlap4-3x5-6x.json", "eval-heldout700-overlap4-8x.json")}
BASE = "eval-heldout700-window-prompt.json"  # its 1x row: the base size on the same prompts and noise
METRICS = ("detail", "fragments", "ground_detail")


def _rows(names) -> dict[float, dict]:
    rows = {}
    for name in names:
        rows.update({r["scale"]: r for r in json.loads((RESULTS / name).read_text())["rows"]})
    return rows


def _values(row: dict, metric: str, n: int) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in row[f"{metric}_per_image"][:n]], dtype=float)


def main() -> int:
    from analysis.stats import bootstrap_ci
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    runs = {setting: _rows(names) for setting, names in FILES.items()}
    base = _rows((BASE,))[1.0]
    out = {"provenance": provenance(config={"files": FILES, "base": BASE, "seed": 700}), "scales": []}
    for scale in sorted(runs["minimum"]):
        entry = {"scale": scale}
        for setting, rows in runs.items():
            row = rows[scale]
            n = row["n"]
            detail, base_detail = _values(row, "detail", n), _values(base, "detail", n)
            both = np.isfinite(detail) & np.isfinite(base_detail)
            entry[setting] = {"n": n, "correct": row["correct"], "accuracy": row["accuracy"],
                              "ci95_exact": row["ci95_exact"], "mean_count": row["mean_count"],
                              "fragments": row["fragments"], "detail": row["detail"],
                              "ratio": float(np.mean(detail[both]) / np.mean(base_detail[both])),
                              "ground_detail": row["ground_detail"], "window_overlap": row["window_overlap"]}
        diffs = {}
        for metric in METRICS:
            a, b = (_values(runs[s][scale], metric, runs[s][scale]["n"]) for s in ("quarter", "minimum"))
            both = np.isfinite(a) & np.isfinite(b)
            d = a[both] - b[both]
            lo, hi = bootstrap_ci(d)
            diffs[metric] = {"mean": float(d.mean()), "ci95": [lo, hi], "n": int(both.sum())}
        entry["quarter_minus_minimum"] = diffs
        out["scales"].append(entry)
    before = json.loads((RESULTS / "eval-heldout700-defaults-8x.json").read_text())["rows"][0]
    again = runs["minimum"][8.0]
    out["reproduction_8x"] = {"file": "eval-heldout700-defaults-8x.json", "correct_same": before["correct"] == again["correct"],
                              "detail_max_abs_diff": float(np.nanmax(np.abs(_values(before, "detail", 16)
                                                                            - _values(again, "detail", 16))))}
    with atomic_write(RESULTS / "heldout-overlap.json") as f:
        f.write(dumps_strict(out, indent=1) + "\n")
    for entry in out["scales"]:
        print(entry["scale"], {s: (entry[s]["correct"], round(entry[s]["mean_count"], 2), round(entry[s]["fragments"], 2),
                                   round(entry[s]["ratio"], 3), round(entry[s]["ground_detail"] or 0, 3))
                               for s in FILES},
              {m: (round(v["mean"], 4), [round(x, 4) for x in v["ci95"]]) for m, v in entry["quarter_minus_minimum"].items()})
    print("reproduction", out["reproduction_8x"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
