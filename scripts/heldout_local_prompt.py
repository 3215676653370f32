"""The local prompt on fresh held-out prompts: ``eval-toy`` at 3x, 4x and 8x with the defaults and with three
local-only steps under each image's window prompt, paired image by image.

    resdit eval-toy --modes resdit --scales 1 3 4 --prompts 64 --seed 700 --local-steps 3 --window-prompts \\
        --threads 1 --out results/toy-v2/eval-heldout700-window-prompt.json
    resdit eval-toy --modes resdit --scales 8 --prompts 16 --seed 700 --local-steps 3 --window-prompts \\
        --window-overlap 1 --threads 1 --out results/toy-v2/eval-heldout700-window-prompt-8x.json
    resdit eval-toy --modes resdit --scales 3 4 --prompts 64 --seed 700 --threads 1 \\
        --out results/toy-v2/eval-heldout700-defaults.json
    resdit eval-toy --modes resdit --scales 8 --prompts 16 --seed 700 --window-overlap 1 --threads 1 \\
        --out results/toy-v2/eval-heldout700-defaults-8x.json
    resdit eval-toy --modes two_stage --scales 8 --prompts 8 --seed 700 --threads 1 \\
        --out results/toy-v2/eval-heldout700-two-stage-8x.json
    resdit eval-toy --modes resdit --scales 4 --prompts 64 --seed 700 --local-steps 3 --window-prompts \\
        --splice feather --threads 1 --out results/toy-v2/eval-heldout700-window-prompt-feather.json
    resdit eval-toy --modes resdit --scales 3 --prompts 64 --seed 700 --local-steps 3 --window-prompts \\
        --splice feather --threads 1 --out results/toy-v2/eval-heldout700-window-prompt-feather-3x.json
    resdit eval-toy --modes resdit --scales 8 --prompts 16 --seed 700 --local-steps 3 --window-prompts \\
        --splice feather --window-overlap 4 --threads 2 \\
        --out results/toy-v2/eval-heldout700-window-prompt-feather-overlap4-8x.json
    python scripts/heldout_local_prompt.py      # results/toy-v2/heldout-local-prompt.json

Seed 700: prompts and noise that chose nothing (the local prompt's setting was probed on seed 500's). The 8x runs
ran the minimum-overlap windows, the defaults before ``mode="resdit"`` took a quarter-window overlap (at 3x and 4x
the two are the same windows): ``--window-overlap 1`` reproduces them. The 8x runs
take the first 16 (two-stage: 8; an image costs it about four times the defaults') of the same prompts and noise
(``evaluation_prompts`` slices one fixed order), so their base size is the first images of the 1x row. Per scale and setting: correct, objects per image, drawn-object detail (the
mean over images that drew the object) and its ratio to the base size's over the same images; per scale the paired
difference of detail, window prompt - defaults (and each - two-stage where it ran) over images both drew, with a
95 % BCa interval from resampling images.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "results" / "toy-v2"
FILES = {"window_prompt": ("eval-heldout700-window-prompt.json", "eval-heldout700-window-prompt-8x.json"),
         "defaults": ("eval-heldout700-defaults.json", "eval-heldout700-defaults-8x.json"),
         "two_stage": ("eval-heldout700-two-stage-8x.json",),
         "window_prompt_feather": ("eval-heldout700-window-prompt-feather.json",
                                   "eval-heldout700-window-prompt-feather-3x.json"),
         "window_prompt_feather_overlap4": ("eval-heldout700-window-prompt-feather-overlap4-8x.json",)}
PAIRS = (("window_prompt", "defaults"), ("window_prompt", "two_stage"), ("defaults", "two_stage"),
         ("window_prompt_feather", "defaults"), ("window_prompt_feather", "window_prompt"),
         ("window_prompt_feather_overlap4", "defaults"), ("window_prompt_feather_overlap4", "window_prompt"),
         ("window_prompt_feather_overlap4", "two_stage"))


def _rows(names) -> dict[float, dict]:
    rows = {}
    for name in names:
        path = RESULTS / name
        if path.exists():
            rows.update({r["scale"]: r for r in json.loads(path.read_text())["rows"]})
    return rows


def _values(row: dict, n: int) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in row["detail_per_image"][:n]], dtype=float)


def _ratio(values: np.ndarray, base: np.ndarray) -> float | None:
    """Mean detail over the images that drew the object, over the base size's (None where none drew it)."""
    if not np.isfinite(values).any():
        return None
    return float(np.nanmean(values) / np.nanmean(base))


def main() -> int:
    from analysis.stats import bootstrap_ci
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    runs = {setting: _rows(names) for setting, names in FILES.items()}
    base = runs["window_prompt"].get(1.0)
    if base is None:
        raise SystemExit(f"no base-size row: run the first eval-toy command of {__file__}'s docstring")
    out = {"provenance": provenance(config={"files": FILES, "seed": 700}), "base": {}, "scales": []}
    for scale in sorted({s for rows in runs.values() for s in rows if s != 1.0}):
        entry = {"scale": scale}
        for setting, rows in runs.items():
            row = rows.get(scale)
            if row is None:
                continue
            n = row["n"]
            values, base_values = _values(row, n), _values(base, n)
            both = np.isfinite(values) & np.isfinite(base_values)
            entry[setting] = {"n": n, "correct": row["correct"], "accuracy": row["accuracy"],
                              "ci95_exact": row["ci95_exact"], "mean_count": row["mean_count"],
                              "detail": row["detail"], "base_detail": float(np.nanmean(base_values)),
                              "ratio": _ratio(values, base_values),
                              "ratio_same_images": _ratio(values[both], base_values[both]),
                              "seconds_per_image": row["seconds"] / n}
            out["base"][str(n)] = float(np.nanmean(base_values))
        for a_name, b_name in PAIRS:
            if a_name not in entry or b_name not in entry:
                continue
            n = min(entry[a_name]["n"], entry[b_name]["n"])
            a, b = _values(runs[a_name][scale], n), _values(runs[b_name][scale], n)
            both = np.isfinite(a) & np.isfinite(b)
            d = a[both] - b[both]
            lo, hi = bootstrap_ci(d) if len(d) > 1 else (float("nan"), float("nan"))
            entry[f"{a_name}_minus_{b_name}"] = {"mean": float(d.mean()) if len(d) else None,
                                                 "ci95": [lo, hi] if len(d) > 1 else None, "n": int(both.sum()),
                                                 "of": n}
        out["scales"].append(entry)
    with atomic_write(RESULTS / "heldout-local-prompt.json") as f:
        f.write(dumps_strict(out, indent=1) + "\n")
    for entry in out["scales"]:
        print(entry["scale"], {k: (v["ratio"], v["correct"], v["mean_count"]) for k, v in entry.items()
                               if isinstance(v, dict) and "ratio" in v and "correct" in v},
              {k: v for k, v in entry.items() if "_minus_" in k})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
