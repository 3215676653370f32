"""The 3x-8x study across both studies: one summary with one statistic, its figures.

    python scripts/figures_scales.py     # results/study-v3/scales.json, figures/scales.png, figures/samples_3x.png

``scales.json`` holds every group of ``results/study-v2`` and ``results/study-v3`` (same prompts, seeds and noise)
summarised alike (mean over prompts, prompt-bootstrap BCa intervals, exact binomial intervals for correct), so
prose and figures can compare a condition of one study with a condition of the other.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.craft import save_figure  # noqa: E402
from analysis.figures import METHOD_LABELS, sample_strip, scales_figure  # noqa: E402
from analysis.study import group_summary  # noqa: E402
from analysis.tables import load_rows  # noqa: E402


def main() -> int:
    v3, v2 = ROOT / "results/study-v3", ROOT / "results/study-v2"
    rows_v3 = load_rows(v3)
    groups = group_summary(load_rows(v2, v3))  # one statistic (prompt bootstrap) for both studies, cases once
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    with atomic_write(v3 / "scales.json") as f:
        f.write(dumps_strict({"provenance": provenance(config={"studies": ["results/study-v2", "results/study-v3"]}),
                              "groups": groups}, indent=1) + "\n")
    base = next(g for g in groups if g["condition"] == "base")
    fig = scales_figure(groups, base_detail=base["detail"]["mean"])
    save_figure(fig, ROOT / "figures/scales.png", dpi=130)
    conditions = ["resdit+base_tokens+fft+align2", "resdit+full_tokens", "two_stage", "tiling", "upscale"]
    METHOD_LABELS.setdefault("resdit+full_tokens", "ResDiT, full-size global branch")
    fig = sample_strip(v3, 3.0, conditions, [(2, 0), (3, 0), (7, 1), (12, 0)], rows_v3)
    save_figure(fig, ROOT / "figures/samples_3x.png", dpi=130)
    print("wrote figures/scales.png and figures/samples_3x.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
