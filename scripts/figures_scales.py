"""Figures of the 3x-8x study: layout, fragments and detail against the scale, and samples side by side.

    python scripts/figures_scales.py     # writes figures/scales.png and figures/samples_3x.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.figures import METHOD_LABELS, sample_strip, scales_figure  # noqa: E402
from analysis.study import group_summary  # noqa: E402
from analysis.tables import load_rows  # noqa: E402


def main() -> int:
    v3, v2 = ROOT / "results/study-v3", ROOT / "results/study-v2"
    rows_v3 = load_rows(v3)
    groups = group_summary(load_rows(v2) + rows_v3)  # one statistic (prompt bootstrap) for both studies
    base = next(g for g in groups if g["condition"] == "base")
    fig = scales_figure(groups, base_detail=base["detail"]["mean"])
    fig.savefig(ROOT / "figures/scales.png", dpi=130, bbox_inches="tight")
    conditions = ["resdit+base_tokens", "resdit@defaults", "two_stage", "tiling", "upscale"]
    METHOD_LABELS.setdefault("resdit@defaults", "ResDiT, full-size global branch")
    fig = sample_strip(v3, 3.0, conditions, [(2, 0), (3, 0), (7, 1), (12, 0)], rows_v3)
    fig.savefig(ROOT / "figures/samples_3x.png", dpi=130, bbox_inches="tight")
    print("wrote figures/scales.png and figures/samples_3x.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
