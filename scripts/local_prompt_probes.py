"""Probes of what limits drawn-object detail at 3x-4x on held-out striped prompts, and of the local-only phase's
own prompt (``local_prompt``):

    python scripts/local_prompt_probes.py      # results/toy-v2/local-prompt-probes.json (about 20 minutes on two cores)

The prompts: the first 16 striped prompts of ``eval-toy``'s held-out set (``evaluation_prompts(64, seed=500)``),
noise seeds 500-515, 20 steps, the base size's shift; each probe a change to the defaults' config
(``mode="resdit"``), scored by the study's ``score_case`` (means over the cases; detail over those that drew the
object). Also:

* ``per_window``: stripe energy of the drawn object per window (32 px, stride 16) over the exact render's, windows
  inside the object (coverage > 0.9) against those on its edge, at 4x;
* ``band_trajectory``: the grey image's spectral energy per pixel in the stripes' band (0.21-0.29 cycles/px) of the
  transformer's input at every step and of the output, 4 prompts, the base size against 4x (that input is mostly
  noise until the last steps: what the model has drawn at each step is read by ``x0_detail_trajectory.py``);
* ``window_img2img``: base-size img2img (strength 0.5 and 0.8) of 32 px windows of the exact 4x render, under the
  prompt and under its window prompt (``window_prompt``), stripe energy over the render's in the window.

These are probes on held-out prompts (they chose the local-only phase's setting): a confirming run uses fresh ones.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROBES = {  # label -> (scale, config changes, local prompt: the window prompt)
    "1x base size": (1, None, False),
    "2x defaults": (2, {}, False),
    "2x 3 local-only steps, window prompt": (2, dict(local_steps=3), True),
    "3x defaults": (3, {}, False),
    "3x 3 local-only steps, window prompt": (3, dict(local_steps=3), True),
    "4x defaults": (4, {}, False),
    "4x 3 local-only steps": (4, dict(local_steps=3), False),
    "4x 3 local-only steps, window prompt": (4, dict(local_steps=3), True),
    "4x 3 global-only steps": (4, dict(global_steps=3), False),
    "4x cutoff 0.1": (4, dict(cutoff=0.1), False),
    "4x whole call under the window prompt": (4, {}, "whole"),
}
KEYS = ("correct", "fragments", "detail", "ground_detail", "seam")
N, SEED, STEPS = 16, 500, 20


def _setup():
    import torch

    from resdit.toy import load_pipeline
    from resdit.toy.evaluate import evaluation_prompts

    torch.set_num_threads(1)
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    prompts = [p for p in evaluation_prompts(64, seed=SEED, world=pipe.world) if "striped" in p][:N]
    return pipe, prompts


def _noise(n, h, w):
    import torch

    return torch.stack([torch.randn(3, h, w, generator=torch.Generator().manual_seed(SEED + i)) for i in range(n)])


def probe(label: str) -> tuple[dict, np.ndarray]:
    from resdit import ResDiTConfig, generate
    from resdit.toy.world import window_prompt

    pipe, prompts = _setup()
    base = tuple(pipe.base_size)
    scale, changes, local = PROBES[label]
    h, w = base[0] * scale, base[1] * scale
    cfg = (ResDiTConfig(base_size=base, mode="direct") if changes is None
           else ResDiTConfig(base_size=base, mode="resdit", mu="base", **changes))
    windows = [window_prompt(p, pipe.world) for p in prompts]
    images = generate(pipe, windows if local == "whole" else prompts, cfg, h, w, STEPS, latents=_noise(N, h, w),
                      local_prompt=windows if local is True else None).numpy()
    return {"label": label, "scale": scale, "config": changes, "local_prompt": local, "n": len(prompts),
            **score_means(images, prompts, pipe)}, images


def score_means(images: np.ndarray, prompts: list[str], pipe) -> dict:
    """The study's ``score_case`` of each image (seams on the defaults' windows), averaged per metric of
    :data:`KEYS` over the images where it is defined (detail: those that drew the object)."""
    from analysis.scoring import score_case
    from resdit import ResDiTConfig

    base = tuple(pipe.base_size)
    spec = ResDiTConfig(base_size=base, mode="resdit")
    rows = [score_case(im, p, base, spec.spec.windows, world=pipe.world, align=spec.align)
            for im, p in zip(images, prompts)]
    means = {}
    for k in KEYS:
        values = [r[k] for r in rows if r[k] is not None and np.isfinite(r[k])]
        means[k] = float(np.mean(values)) if values else None
    return means


def per_window(images: np.ndarray, prompts: list[str], world: str) -> dict:
    from analysis.metrics import _inner, drawn_mask, stripe_band_energy, texture_frequency
    from resdit.toy.world import parse_prompt, render

    f = texture_frequency("striped", world)
    found = {"interior": [], "edge": []}
    for image, prompt in zip(images, prompts):
        scene = parse_prompt(prompt, world)
        exact = render(scene, *image.shape[1:])
        drawn = drawn_mask(image, scene.objects[0].colour)
        if drawn is None:
            continue
        drawn, true = _inner(drawn), _inner(exact.masks[0] > 0.5)
        for y in range(0, image.shape[1] - 31, 16):
            for x in range(0, image.shape[2] - 31, 16):
                m, t = drawn[y:y + 32, x:x + 32], true[y:y + 32, x:x + 32]
                if m.sum() < 60 or t.sum() < 60:
                    continue
                got = stripe_band_energy(image.mean(0)[y:y + 32, x:x + 32], m, f)[0]
                ref = stripe_band_energy(exact.image.mean(0)[y:y + 32, x:x + 32], t, f)[0]
                found["interior" if t.mean() > 0.9 else "edge"].append(got / ref)
    return {k: {"n": len(v), "detail": float(np.mean(v))} for k, v in found.items()}


def band_trajectory() -> dict:
    from resdit import ResDiTConfig, generate
    from resdit.toy import model as toy

    pipe, prompts = _setup()
    base = tuple(pipe.base_size)
    prompts = prompts[:4]

    def stripe_band(images):
        gray = images.mean(1)
        h, w = gray.shape[-2:]
        spectrum = np.abs(np.fft.fft2(gray - gray.mean((-1, -2), keepdims=True))) ** 2 / (h * w)
        radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
        return float(spectrum[:, (radius > 0.21) & (radius <= 0.29)].sum(-1).mean() / (h * w))

    out = {}
    for scale, mode in ((1, "direct"), (4, "resdit")):
        h, w = base[0] * scale, base[1] * scale
        seen = []
        handle = pipe.transformer.register_forward_pre_hook(
            lambda m, a, kw: seen.append(stripe_band(toy.unpack(kw["hidden_states"], h, w).numpy())), with_kwargs=True)
        try:
            final = generate(pipe, prompts, ResDiTConfig(base_size=base, mode=mode), h, w, STEPS,
                             latents=_noise(len(prompts), h, w)).numpy()
        finally:
            handle.remove()
        out[f"{scale}x"] = seen + [stripe_band(final * 2 - 1)]
    out["ratio_4x_to_1x"] = [a / b for a, b in zip(out["4x"], out["1x"])]
    return out


def window_img2img() -> dict:
    import torch

    from analysis.metrics import _inner, stripe_band_energy, texture_frequency
    from resdit.toy.world import parse_prompt, render, window_prompt

    pipe, prompts = _setup()
    crops, masks = [], []
    for p in prompts:
        exact = render(parse_prompt(p, pipe.world), 128, 128)
        for y in range(0, 128, 32):
            for x in range(0, 128, 32):
                m = exact.masks[0][y:y + 32, x:x + 32] > 0.5
                if m.mean() >= 0.3:  # windows holding a good part of the object
                    crops.append((p, exact.image[:, y:y + 32, x:x + 32]))
                    masks.append(_inner(m))
    f = texture_frequency("striped", pipe.world)
    images = torch.tensor(np.stack([c for _, c in crops])).float()
    noise = torch.stack([torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(40 + i))
                         for i in range(len(crops))])
    out = {"windows": len(crops)}
    for strength in (0.5, 0.8):
        for name, text in (("prompt", [p for p, _ in crops]),
                           ("window_prompt", [window_prompt(p, pipe.world) for p, _ in crops])):
            got = pipe(prompt=text, height=32, width=32, num_inference_steps=STEPS, image=images, strength=strength,
                       latents=noise, output_type="pt").images.numpy()
            ratios = [stripe_band_energy(g.mean(0), m, f)[0] / stripe_band_energy(c.mean(0), m, f)[0]
                      for g, (_, c), m in zip(got, crops, masks)]
            out[f"{name}_strength{round(strength * 100)}"] = float(np.mean(ratios))
    return out


def main() -> int:
    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    with ProcessPoolExecutor(2) as pool:
        done = dict(zip(PROBES, pool.map(probe, PROBES)))
        extra = {"band_trajectory": pool.submit(band_trajectory), "window_img2img": pool.submit(window_img2img)}
        extra = {k: v.result() for k, v in extra.items()}
    _, prompts = _setup()
    windows = {key: per_window(done[label][1], prompts, "v2")
               for key, label in (("defaults", "4x defaults"), ("local_prompt", "4x 3 local-only steps, window prompt"))}
    rows = [row for row, _ in done.values()]
    for r in rows:
        print(f"{r['label']:>42s}  detail {r['detail']:.3f}  pieces {r['fragments']:.2f}  correct {r['correct']:.2f}")
    record = {"provenance": provenance(config={"probes": {k: list(v) for k, v in PROBES.items()}, "prompts": N,
                                               "seed": SEED, "steps": STEPS}),
              "prompts": prompts, "probes": rows, "per_window": windows, **extra}
    with atomic_write(ROOT / "results/toy-v2/local-prompt-probes.json") as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
