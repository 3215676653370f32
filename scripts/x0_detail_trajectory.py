"""When the 4x stripes fall behind: drawn-object detail of the model's clean-image estimate at every step.

    python scripts/x0_detail_trajectory.py           # results/toy-v2/x0-detail-trajectory.json, figures/x0_detail.png
    python scripts/x0_detail_trajectory.py --figure  # only redraw the figure from the JSON

(about 10 minutes on two cores.)

The image being denoised is mostly noise until the last steps, so its texture band says little about the stripes
(``local_prompt_probes.py``'s ``band_trajectory`` reads the same 0.95 of the base size's at pure noise as after ten
steps). What the model has drawn at a step is its estimate of the clean image, ``x0 = x_t - sigma_t * v`` (flow
matching; the transformer's output is the velocity ``v``, after ResDiT's fusion). Each estimate is read by the study's
detail reader (texture-band energy per pixel inside the drawn object over the exact render's inside the true object),
on the mask of the object the finished image drew, so that every step of a case is read on the same pixels.

The prompts and noise are ``local_prompt_probes.py``'s (the first 16 striped prompts of ``eval-toy``'s held-out set,
noise seeds 500-515, 20 steps, the base size's shift at every size). Runs: the base size (``direct``), and at 4x the
defaults, three local-only steps under the call's prompt, and the same under the window prompt (``local_prompt``).
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS = {  # label -> (scale, config changes (None: direct), the local-only phase under the window prompt)
    "1x base size": (1, None, False),
    "4x defaults": (4, {}, False),
    "4x 3 local-only steps": (4, dict(local_steps=3), False),
    "4x 3 local-only steps, window prompt": (4, dict(local_steps=3), True),
}
N, SEED, STEPS = 16, 500, 20


def run(label: str) -> dict:
    import torch

    from analysis.metrics import _inner, _relative_band, drawn_mask, texture_frequency, truth
    from resdit import ResDiTConfig, generate
    from resdit.toy import load_pipeline
    from resdit.toy import model as toy
    from resdit.toy.evaluate import evaluation_prompts
    from resdit.toy.world import parse_prompt, window_prompt

    torch.set_num_threads(1)
    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    prompts = [p for p in evaluation_prompts(64, seed=SEED, world=pipe.world) if "striped" in p][:N]
    base = tuple(pipe.base_size)
    scale, changes, local = RUNS[label]
    h, w = base[0] * scale, base[1] * scale
    cfg = (ResDiTConfig(base_size=base, mode="direct") if changes is None
           else ResDiTConfig(base_size=base, mode="resdit", mu="base", **changes))
    estimates, sigmas = [], []

    def keep(module, args, kwargs, output):
        sigma = kwargs["timestep"].view(-1, 1, 1)
        x0 = kwargs["hidden_states"] - sigma * output.sample
        estimates.append(((toy.unpack(x0, h, w) + 1) / 2).clamp(0, 1).numpy())
        sigmas.append(float(kwargs["timestep"][0]))

    noise = torch.stack([torch.randn(3, h, w, generator=torch.Generator().manual_seed(SEED + i)) for i in range(N)])
    handle = pipe.transformer.register_forward_hook(keep, with_kwargs=True)
    try:
        final = generate(pipe, prompts, cfg, h, w, STEPS, latents=noise,
                         local_prompt=[window_prompt(p, pipe.world) for p in prompts] if local else None).numpy()
    finally:
        handle.remove()
    per_case = []
    for i, prompt in enumerate(prompts):
        scene = parse_prompt(prompt, pipe.world)
        obj = scene.objects[0]
        exact, masks = truth(scene, h, w)
        drawn = drawn_mask(final[i], obj.colour)
        if drawn is None:
            per_case.append(None)
            continue
        f = texture_frequency(obj.texture, pipe.world)
        reads = [_relative_band(image[i], _inner(drawn), exact, _inner(masks[0] > 0.5), f)
                 for image in [*estimates, final]]
        per_case.append([float(r) for r in reads])
    return {"label": label, "scale": scale, "config": changes, "local_prompt": local, "sigmas": sigmas,
            "per_case": per_case}


OUT = ROOT / "results/toy-v2/x0-detail-trajectory.json"
FIGURE = ROOT / "figures/x0_detail.png"


def figure(record: dict, path: Path = FIGURE) -> Path:
    """Drawn-object detail of the clean-image estimate per step (4x over the base size), one line per run, the
    phases of the defaults shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.craft import save_figure
    from resdit.schedule import phase_lengths

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    g, fused, loc = phase_lengths(STEPS, local_steps=3)
    ax.axvspan(-0.5, g - 0.5, color="0.9", lw=0)
    ax.axvspan(g + fused - 0.5, STEPS - 0.5, color="#fde8c8", lw=0)
    ax.text(g / 2 - 0.5, 1.02, "global only", ha="center", va="bottom", fontsize=9)
    ax.text(g + fused / 2 - 0.5, 1.02, "fused", ha="center", va="bottom", fontsize=9)
    ax.text(STEPS - loc / 2 - 0.5, 1.02, "local only\n(3-step runs)", ha="center", va="bottom", fontsize=9)
    styles = {"4x defaults": ("#0072b2", "-"), "4x 3 local-only steps": ("#999999", "--"),
              "4x 3 local-only steps, window prompt": ("#d55e00", "-")}
    for run in record["runs"]:
        if run["label"] in styles:
            colour, line = styles[run["label"]]
            ratio = run["ratio_to_base_by_step"]
            ax.plot(range(len(ratio)), ratio, line, color=colour, marker="o", ms=3, label=run["label"])
    ax.axhline(0.7, color="k", lw=0.8, ls=":", label="target: 0.7 of the base size's")
    ax.set_xticks(range(0, STEPS + 1, 2), [*map(str, range(0, STEPS, 2)), "out"])
    ax.set_xlim(-0.5, STEPS + 0.5)
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("step (the estimate x0 = x_t - sigma v at each step's transformer call; out: the output)")
    ax.set_ylabel("detail, 4x over the base size's")
    ax.set_title(f"4x stripes of the clean-image estimate, {len(record['cases'])} held-out prompts")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return save_figure(fig, path, dpi=130)


def main(argv=None) -> int:
    import argparse
    import json

    from resdit.io import atomic_write, dumps_strict
    from resdit.provenance import provenance

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figure", action="store_true", help="only redraw the figure from the JSON")
    if ap.parse_args(argv).figure:
        print(figure(json.loads(OUT.read_text())))
        return 0
    with ProcessPoolExecutor(2) as pool:
        runs = dict(zip(RUNS, pool.map(run, RUNS)))
    base = runs["1x base size"]
    kept = [i for i in range(N)  # cases where every run drew the object and the render has stripes to compare with
            if all(r["per_case"][i] is not None and np.isfinite(r["per_case"][i]).all() for r in runs.values())]
    out = []
    for label, r in runs.items():
        reads = np.array([r["per_case"][i] for i in kept])  # cases x (steps + the output)
        mean = reads.mean(0)
        ratio = mean / np.array([base["per_case"][i] for i in kept]).mean(0)
        out.append({"label": label, "scale": r["scale"], "config": r["config"],
                    "local_prompt": r["local_prompt"], "cases": len(kept), "detail_by_step": mean.tolist(),
                    "ratio_to_base_by_step": ratio.tolist()})
        print(f"{label:>38s}  " + " ".join(f"{v:.2f}" for v in ratio))
    record = {"provenance": provenance(config={"runs": {k: list(v) for k, v in RUNS.items()}, "prompts": N,
                                               "seed": SEED, "steps": STEPS}),
              "sigmas": base["sigmas"],
              "steps": "the estimate at each of the 20 steps' transformer calls, then the output",
              "cases": kept, "runs": out, "per_case": {k: v["per_case"] for k, v in runs.items()}}
    with atomic_write(OUT) as f:
        f.write(dumps_strict(record, indent=1) + "\n")
    print(figure(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
