"""Quick probes of what limits drawn-object detail in the local windows, on the study's first 16 cases (its 16
prompts, seed 0, 20 steps, the base size's shift), each a change to the defaults' config (`mode="resdit"`):

    python scripts/detail_probes.py      # results/toy-v2/detail-probes.json (about 15 minutes on two cores)

Probes: at 3x the window starts (minimum-overlap, even, multiples of 4) and the splice width (0.1, 0.01: a hard cut
at the nearest window centre); at 2x the splice width and a shorter global-only phase; at 4x, whose strides are even,
the hard cut; and at the base size, detail against the drawn object's size on prompts without place words. Means
over the cases (detail over those that drew the object); quoted in docs/decisions.md and docs/findings.md.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROBES = {  # label -> (scale, config changes)
    "3x min-overlap starts": (3, dict(window_align=1)),
    "3x even starts": (3, dict()),
    "3x starts on multiples of 4": (3, dict(window_align=4)),
    "3x min-overlap starts, splice 0.1": (3, dict(window_align=1, splice_width=0.1)),
    "3x min-overlap starts, hard cut": (3, dict(window_align=1, splice_width=0.01)),
    "3x even starts, splice 0.1": (3, dict(splice_width=0.1)),
    "2x defaults": (2, dict()),
    "2x splice 0.1": (2, dict(splice_width=0.1)),
    "2x 2 global-only steps": (2, dict(global_steps=2)),
    "4x defaults": (4, dict()),
    "4x hard cut": (4, dict(splice_width=0.01)),
}
KEYS = ("correct", "fragments", "detail", "ground_detail", "seam")


def probe(label: str) -> dict:
    import torch

    from analysis.scoring import score_case
    from analysis.study import case_noise
    from resdit import ResDiTConfig, generate
    from resdit.toy import load_pipeline
    from resdit.toy.evaluate import canvas_size, evaluation_prompts

    torch.set_num_threads(1)
    scale, changes = PROBES[label]
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    base = tuple(pipe.base_size)
    prompts = evaluation_prompts(16, seed=0, world=pipe.world)
    cfg = ResDiTConfig(base_size=base, mode="resdit", mu="base", **changes)
    h, w = canvas_size(base, scale)
    noise = torch.stack([case_noise(p, 0, h, w) for p in range(16)])
    images = generate(pipe, prompts, cfg, h, w, 20, latents=noise).numpy()
    rows = [score_case(im, p, base, cfg.spec.windows, world=pipe.world, align=cfg.align) for im, p in zip(images, prompts)]
    return {"label": label, "scale": scale, "config": changes, "n": len(rows),
            **{k: float(np.nanmean([np.nan if r[k] is None else r[k] for r in rows])) for k in KEYS}}


def free_prompts() -> dict:
    """Base size, prompts without place words (free object sizes): detail by the drawn object's area."""
    import torch

    from analysis.metrics import drawn_detail, drawn_mask, truth
    from resdit import ResDiTConfig, generate
    from resdit.toy import load_pipeline
    from resdit.toy.world import COLOURS, SHAPES, parse_prompt

    torch.set_num_threads(1)
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    base = tuple(pipe.base_size)
    prompts = [f"a {c} striped {s}" for c in COLOURS for s in SHAPES] * 4
    noise = torch.stack([torch.randn(3, *base, generator=torch.Generator().manual_seed(7000 + i))
                         for i in range(len(prompts))])
    images = generate(pipe, prompts, ResDiTConfig(base_size=base, mode="direct"), *base, 20, latents=noise).numpy()
    found = []
    for im, p in zip(images, prompts):
        scene = parse_prompt(p, pipe.world)
        gt, masks = truth(scene, *base)
        drawn = drawn_mask(im, scene.objects[0].colour)
        if drawn is not None:
            found.append((float(drawn.mean()), drawn_detail(im, gt, scene.objects[0], masks[0], pipe.world)))
    bins = []
    for lo, hi in ((0.0, 0.2), (0.2, 0.35), (0.35, 1.01)):
        vals = [d for a, d in found if lo <= a < hi and np.isfinite(d)]
        bins.append({"area": [lo, hi], "n": len(vals), "detail": float(np.mean(vals)) if vals else None})
    return {"label": "base size, striped, no place words", "prompts": len(prompts), "drawn": len(found),
            "by_area": bins}


def main() -> int:
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(probe, PROBES))
        free = pool.submit(free_prompts).result()
    for r in rows:
        print(f"{r['label']:>36s}  detail {r['detail']:.3f}  ground {r['ground_detail']:.3f}  correct {r['correct']:.2f}")
    record = {"provenance": provenance(config={"probes": {k: list(v) for k, v in PROBES.items()}, "cases": 16,
                                               "seed": 0, "steps": 20}),
              "probes": rows, "free_prompts": free}
    with atomic_write(ROOT / "results/toy-v2/detail-probes.json") as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
