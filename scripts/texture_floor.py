"""Drawn-object detail by texture: the toy model draws stripes, not checkers, at every size.

    python scripts/texture_floor.py      # results/toy-v2/detail-by-texture.json (about a minute)

Two parts:

* the held-out runs' per-image detail (``results/toy-v2/eval-resdit-detail-*.json``, prompts re-derived from their
  seed) split by the prompt's texture, at each scale, with the ratio to the base size's on the same prompts;
* the base size on 24 checkered prompts (8 per place-free/placed/ground variant): the model's strongest spectral
  peak inside the drawn object against the checker's (``peaks_at_the_checker``: within 0.03 cycles/px), and the
  reader on the exact render with its checker contrast halved (0.25 by construction: the reader sees checkers when
  they are drawn).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS = {1: ("eval-resdit-detail-1x3x.json", 1.0, 64), 3: ("eval-resdit-detail-1x3x.json", 3.0, 64),
        4: ("eval-resdit-detail-4x.json", 4.0, 64), 8: ("eval-resdit-detail-8x.json", 8.0, 16)}
BASE_16 = "eval-resdit-detail-1x-16.json"


def _row(name: str, scale: float) -> dict:
    import json

    rows = json.loads((ROOT / "results/toy-v2" / name).read_text())["rows"]
    return next(r for r in rows if r["scale"] == scale)


def by_texture() -> list[dict]:
    from resdit.toy.evaluate import evaluation_prompts

    out = []
    for scale, (name, s, n) in RUNS.items():
        prompts = evaluation_prompts(n, seed=500, world="v2")
        values = _row(name, s)["detail_per_image"]
        base = _row(*(("eval-resdit-detail-1x3x.json", 1.0) if n == 64 else (BASE_16, 1.0)))["detail_per_image"]
        for texture in ("striped", "checkered"):
            pick = [i for i, p in enumerate(prompts) if texture in p and values[i] is not None and base[i] is not None]
            mean = float(np.mean([values[i] for i in pick]))
            base_mean = float(np.mean([base[i] for i in pick]))
            out.append({"scale": scale, "texture": texture, "n": len(pick), "detail": mean, "base_detail": base_mean,
                        "ratio": mean / base_mean})
    return out


def checker_peaks() -> dict:
    import torch

    from analysis.metrics import _inner, _relative_band, drawn_detail, drawn_mask, texture_frequency, truth
    from resdit import ResDiTConfig, generate
    from resdit.toy import load_pipeline
    from resdit.toy.world import COLOURS, parse_prompt

    torch.set_num_threads(2)
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    base = tuple(pipe.base_size)
    prompts = [f"a {c} checkered {s}{tail}" for tail in ("", " at center", " at center on tiles")
               for c in COLOURS for s in ("circle", "square")]
    noise = torch.stack([torch.randn(3, *base, generator=torch.Generator().manual_seed(900 + i))
                         for i in range(len(prompts))])
    images = generate(pipe, prompts, ResDiTConfig(base_size=base, mode="direct"), *base, 20, latents=noise).numpy()
    f = texture_frequency("checkered", pipe.world)
    side = 64
    radius = np.hypot(np.fft.fftfreq(side)[:, None], np.fft.fftfreq(side)[None, :])
    rows = []
    for image, prompt in zip(images, prompts):
        scene = parse_prompt(prompt, pipe.world)
        gt, masks = truth(scene, *base)
        drawn = drawn_mask(image, scene.objects[0].colour)
        if drawn is None:
            continue
        inner = _inner(drawn)
        gray = image.mean(0)
        spectrum = np.abs(np.fft.fft2((gray - gray[inner].mean()) * inner, s=(side, side))) ** 2
        spectrum[radius < 0.08] = 0  # above the object's own outline
        peak = float(radius.flat[spectrum.argmax()])
        # the exact render with the checker's contrast halved about the object's mean colour
        half = gt.copy()
        m = masks[0] > 0.5
        mean = gt[:, m].mean(1, keepdims=True)
        half[:, m] = mean + 0.5 * (gt[:, m] - mean)
        rows.append({"prompt": prompt, "detail": drawn_detail(image, gt, scene.objects[0], masks[0], pipe.world),
                     "peak_radius": peak, "half_contrast_render": _relative_band(half, _inner(m), gt, _inner(m), f)})
    return {"checker_radius": f, "n": len(rows), "rows": rows,
            "mean_detail": float(np.mean([r["detail"] for r in rows])),
            "peaks_at_the_checker": int(sum(abs(r["peak_radius"] - f) <= 0.03 for r in rows)),
            "half_contrast_render": float(np.mean([r["half_contrast_render"] for r in rows]))}


def main() -> int:
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    record = {"provenance": provenance(config={"runs": {str(k): list(v) for k, v in RUNS.items()}, "base_16": BASE_16}),
              "by_texture": by_texture(), "checkers_at_the_base_size": checker_peaks()}
    for r in record["by_texture"]:
        print(f"{r['scale']}x {r['texture']:>9s} n={r['n']:2d} detail {r['detail']:.3f} base {r['base_detail']:.3f} "
              f"ratio {r['ratio']:.2f}")
    c = record["checkers_at_the_base_size"]
    print(f"checkers at the base size: detail {c['mean_detail']:.3f}, peaks at the checker "
          f"{c['peaks_at_the_checker']}/{c['n']}, half-contrast render {c['half_contrast_render']:.3f}")
    with atomic_write(ROOT / "results/toy-v2/detail-by-texture.json") as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
