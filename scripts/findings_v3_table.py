"""Print the 3x-8x table of docs/findings.md from ``results/study-v3/scales.json``, every number tagged with where
it comes from (``tests/test_quotes.py`` checks each tag against the file):

    python scripts/findings_v3_table.py > /tmp/table.md      # then paste between the table's rows in findings.md

Rows: per scale, the defaults and their factors first, then what they compete with; groups with fewer cases than
the study's 32 are marked with their n.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "results/study-v3/scales.json"
ORDER = [
    ("base", "the base size"),
    ("resdit+base_tokens+fft+align2", "**ResDiT's defaults: base tokens, FFT, windows on even starts**"),
    ("resdit+window_prompt", "ResDiT's defaults + 3 local-only steps under the window prompt (`local_prompt`)"),
    ("resdit+window_prompt+feather", "... the same, feathered splice weights"),
    ("resdit+window_prompt+feather@overlap4", "... the same, windows overlapping by 4+ tokens (`window_overlap=4`)"),
    ("resdit+window_prompt@local_steps2", "... 2 local-only steps"),
    ("resdit+window_prompt@local_steps1", "... 1 local-only step"),
    ("resdit+local_steps3", "ResDiT's defaults + 3 local-only steps under the call's prompt"),
    ("resdit+feather", "ResDiT's defaults with feathered splice weights"),
    ("resdit@overlap4", "ResDiT's defaults, windows overlapping by 4+ tokens (`window_overlap=4`)"),
    ("resdit+align12@overlap4", "... starts on multiples of 12 tokens, the grounds' period (a control)"),
    ("resdit+base_tokens+fft", "ResDiT, base tokens, FFT, minimum-overlap starts (the defaults at 8x before)"),
    ("resdit+base_tokens+fft+nyquist", "... + PSF cutoff at the blocks' Nyquist limit"),
    ("resdit+base_tokens", "ResDiT, base tokens, bilinear upsampler"),
    ("resdit+base_tokens+key_bias", "... + log-count key bias"),
    ("resdit+base_tokens@fused_only", "... pooled in the fused phase only"),
    ("resdit+base_tokens-pa", "... without proportional attention"),
    ("resdit+full_tokens", "ResDiT, full-size global branch (the defaults before)"),
    ("resdit_fast", "resdit_fast"),
    ("resdit_paper", "ResDiT as in the paper (mode resdit_paper)"),
    ("resdit_no_pes", "... without scaled positions (PES)"),
    ("resdit_no_pipe", "... without per-window positions (PIPE)"),
    ("resdit_no_psf", "... without spectral fusion (PSF: the average)"),
    ("resdit_no_mop_gws", "... grid windows, hard splice (no MOP, no GWS)"),
    ("resdit_mop_only", "... windows only (MOP, uniform splice)"),
    ("resdit_paper+pa", "... + proportional attention"),
    ("resdit_paper+fuse_to_end", "... fused to the last step"),
    ("resdit_paper@sigma", "... phases by noise level"),
    ("resdit_paper+pa@sigma", "... + proportional attention, phases by noise level"),
    ("resdit_paper+fuse_to_end+pa@pipeline_shift", "... fused to the end + prop. attn, pipeline shift"),
    ("resdit+full_tokens@global_16of35", "full-size branch, global phase to 16/35"),
    ("resdit+full_tokens@global_21of35", "full-size branch, global phase to 21/35"),
    ("scaled_pe+pa", "scaled PE + proportional attention"),
    ("scaled_pe+pa@pipeline_shift", "scaled PE + proportional attention, pipeline shift"),
    ("two_stage", "two-stage"),
    ("tiling", "latent tiling"),
    ("tiling_gaussian", "latent tiling, Gaussian weights"),
    ("upscale", "bicubic upscale"),
    ("scaled_pe", "scaled PE"),
    ("patch_pe_local", "windowed attention"),
    ("extrapolate", "direct (stock attention)"),
    ("ntk", "NTK-aware RoPE"),
    ("dype", "DyPE"),
    ("time_aware", "time-aware RoPE"),
    ("patch_pe", "per-patch positions"),
]
SCALES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
# where mode resdit's quarter-window overlap changes the toy's windows, the defaults are resdit@overlap4 (the same
# windows) and the even-start condition is the minimum-overlap layout they replaced
WIDER = {5.0, 6.0, 7.0, 8.0}
LABELS_WIDER = {"resdit@overlap4": "**ResDiT's defaults: windows overlapping by a quarter of the window (4 tokens)**",
                "resdit+base_tokens+fft+align2": "ResDiT's defaults before, minimum-overlap windows on even starts",
                "resdit+window_prompt": "the defaults before (minimum overlap) + 3 local-only steps under the window "
                                        "prompt (`local_prompt`)",
                "resdit+feather": "the defaults before (minimum overlap) with feathered splice weights"}
# conditions that v2 already reports at 2x and 4x (findings' v2 section): shown here only at 3x and 8x
V2_ONLY = {"resdit_paper", "tiling_gaussian", "patch_pe_local", "extrapolate", "ntk", "dype", "time_aware", "patch_pe",
           "resdit_no_pes", "resdit_no_pipe", "resdit_no_psf", "resdit_no_mop_gws", "resdit_mop_only", "resdit_paper+pa",
           "resdit_paper+fuse_to_end", "resdit_paper@sigma", "resdit_paper+pa@sigma",
           "resdit_paper+fuse_to_end+pa@pipeline_shift", "resdit+full_tokens@global_16of35",
           "resdit+full_tokens@global_21of35", "scaled_pe+pa@pipeline_shift"}


def tag(condition: str, scale: float, path: str) -> str:
    return f"<!-- q:{SOURCE}#groups[condition={condition},scale={scale:g}].{path} -->"


def fmt(group: dict, condition: str, scale: float, metric: str, digits: int = 2, interval: str | None = None) -> str:
    m = group.get(metric) or {}
    mean = m.get("mean")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    text = f"{mean:.{digits}f}{tag(condition, scale, f'{metric}.mean')}"
    if interval and m.get(interval):
        lo, hi = m[interval]
        text += (f" [{lo:.{digits}f}{tag(condition, scale, f'{metric}.{interval}[0]')}, "
                 f"{hi:.{digits}f}{tag(condition, scale, f'{metric}.{interval}[1]')}]")
    return text


def main() -> int:
    groups = json.loads((ROOT / SOURCE).read_text())["groups"]
    by = {(g["condition"], g["scale"]): g for g in groups}
    print("| scale | condition | n | correct [exact 95 %] | objects | pieces | drawn-object detail [95 %] | "
          "ground detail | seams |")
    print("|---|---|---|---|---|---|---|---|---|")
    for scale in SCALES:
        for condition, label in ORDER:
            g = by.get((condition, scale))
            if g is None or (condition in V2_ONLY and scale in (2.0, 4.0)):
                continue
            if condition != "base" and scale == 1.0:
                continue
            n = f"{g['n']}{tag(condition, scale, 'n')}"
            label = LABELS_WIDER.get(condition, label) if scale in WIDER else label
            cells = [f"{scale:g}x", f"{label} (`{condition}`)", n,
                     fmt(g, condition, scale, "correct", 2, "ci95_exact" if condition != "base" else None),
                     fmt(g, condition, scale, "count"), fmt(g, condition, scale, "fragments", 1),
                     fmt(g, condition, scale, "detail", 2, "ci95"), fmt(g, condition, scale, "ground_detail"),
                     fmt(g, condition, scale, "seam", 1)]
            print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
