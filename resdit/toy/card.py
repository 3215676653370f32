"""The toy model's card: configuration, data, training, loss curve and measured behaviour."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from ..io import atomic_write


def plot_loss(model_dir: Path) -> Path:
    """``loss_curve.png`` from ``train_log.json`` (running mean over 20 logged points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = np.array(json.loads((model_dir / "train_log.json").read_text())["rows"])
    steps, loss = rows[:, 0], rows[:, 1]
    smooth = np.convolve(loss, np.ones(20) / 20, mode="valid")
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(steps, loss, color="0.8", lw=0.8, label="loss (every 10 steps)")
    ax.plot(steps[19:], smooth, color="C0", label="running mean")
    ax.set(xlabel="step", ylabel="flow-matching MSE", yscale="log", title="Toy FLUX training")
    ax.legend()
    fig.tight_layout()
    path = model_dir / "loss_curve.png"
    with atomic_write(path, binary=True) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path


WORLD_TEXT = {
    "v1": "one object (10 % of scenes: two) of 3 shapes x 4 colours x 2 pixel-period textures at one of 9 places, "
          "radius 0.13-0.18 of the canvas, on smooth dark backgrounds",
    "v2": "one object (10 % of scenes: two) of 3 shapes x 4 colours x 2 pixel-period textures (stripes 4 px, "
          "checks 5 px); 60 % of prompts name one of 9 places (radius 0.16-0.34 of the canvas), the rest none "
          "(radius 0.16-1.2 anywhere: close-ups larger than the canvas, crops); grounds plain or with a "
          "fixed-pixel-period texture (tiles 8 px, waves 6 px), named in 60 % of prompts",
}


def table(rows: list[dict]) -> str:
    """Markdown rows of ``resdit eval-toy`` results (``model`` column when rows carry one: v1 vs v2)."""
    lines = ["| model | scale | size | mode | proportional attention | shift | accuracy | correct / n | objects per image |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.get('model', '')} | {r['scale']:g}x | {r['size'][0]}x{r['size'][1]} | {r['mode']} | "
                     f"{'on' if r['proportional_attention'] else 'off'} | {r.get('mu', 'pipeline')} | "
                     f"{r['accuracy']:.2f} | {r['correct']}/{r['n']} | {r['mean_count']:.2f} |")
    return "\n".join(lines)


def write_card(model_dir: str | Path, evaluation: list[dict], notes: str = "") -> Path:
    """Write ``MODEL_CARD.md`` beside the weights."""
    model_dir = Path(model_dir)
    card = json.loads((model_dir / "config.json").read_text())
    plot_loss(model_dir)
    train = card["train"]
    text = f"""# resdit toy FLUX

A `diffusers.FluxTransformer2DModel` of {card['parameters'] / 1e6:.2f} M parameters (with its toy text encoder),
trained by `resdit train-toy --steps {train['steps']} --seed {train['seed']} --world {card.get('world', 'v1')}
--threads {train['threads']}` on procedural scenes
(toy world {card.get('world', 'v1')}, `resdit.toy.world`): {WORLD_TEXT[card.get('world', 'v1')]}. RGB pixels stand in
for latents (FLUX's 2x2 packing: 2 px per token).

* **Base size**: {card['base_size_px'][0]}x{card['base_size_px'][1]} px = {card['base_size_px'][0] // 2}x{card['base_size_px'][1] // 2} tokens, the largest canvas seen in training.
* **Training sizes**: every side in {card['min_side_px']}..{card['base_size_px'][0]} px (even); half the batches square,
  half with independent sides (aspect ratios up to 2:1); never above the base size.
* **Objective**: rectified flow (velocity `noise - x0`), logit-normal timesteps shifted by FLUX's
  resolution rule (toy constants: 64 tokens -> mu 0.5, 256 tokens -> mu 1.15); AdamW lr {train['lr']},
  batch {train['batch']}, {train['steps']} steps, cosine decay, EMA {train['ema']} (shipped weights are the EMA).
* **Training time**: {card['train_minutes']} min on a 2-core CPU ({train['threads']} thread(s)).
* **Transformer config**: `{json.dumps(card['transformer'])}`
* **Written**: {_dt.date.today().isoformat()}

![loss curve](loss_curve.png)

## Measured behaviour

Accuracy = fraction of samples with exactly one object of the prompted colour whose centre lies in the
prompted 3x3 cell, measured from the image by colour segmentation (`resdit.toy.world.prompt_correct`);
objects per image = blobs of the prompted colour. Square canvases, Euler sampling; prompts shuffled and noise
seeded by `eval-toy --seed` (sample i: seed + i), 0 unless the notes below say otherwise.

{table(evaluation)}

{notes}
"""
    path = model_dir / "MODEL_CARD.md"
    with atomic_write(path) as f:
        f.write(text)
    return path
