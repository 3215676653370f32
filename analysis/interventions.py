"""The paper's Figure 2 as a function: conditions (a)-(e) and ResDiT for one prompt and seed."""

from __future__ import annotations

import numpy as np
import torch

from resdit import ResDiTConfig, generate
from resdit.geometry import WindowPartition
from resdit.positions import extrapolated_ids, patch_ids, scaled_ids
from resdit.toy.evaluate import canvas_size

# label -> (mode, generated at the base size?)
CONDITIONS = {
    "(a) base": ("direct", True),
    "(b) extrapolated PE": ("extrapolate", False),
    "(c) scaled PE": ("scaled_pe", False),
    "(d) per-patch PE": ("patch_pe", False),
    "(e) per-patch PE + local attn": ("patch_pe_local", False),
    "ResDiT": ("resdit", False),
}


def run_interventions(pipe, prompt: str, scale: float, steps: int = 20, seed: int = 0,
                      proportional_attention: bool | None = None, mu="base", base_size=None) -> dict[str, np.ndarray]:
    """Images ``[3, H, W]`` per condition; all conditions share one noise sample (resized for (a)).

    ``mu="base"`` runs every condition with the base size's scheduler shift (``"pipeline"``: the pipeline's);
    ``proportional_attention`` None keeps each mode's own default."""
    from resdit.loading import base_size_of

    base = base_size_of(pipe, base_size)
    h, w = canvas_size(base, scale)
    toy = hasattr(pipe, "card")  # toy noise is pixels; FLUX pipelines draw their own latents from the seed
    noise = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed)) if toy else None
    out = {}
    for label, (mode, at_base) in CONDITIONS.items():
        cfg = ResDiTConfig(base_size=base, mode=mode, proportional_attention=proportional_attention, mu=mu)
        if at_base:
            small = torch.randn(1, 3, *base, generator=torch.Generator().manual_seed(seed)) if toy else None
            out[label] = generate(pipe, prompt, cfg, *base, steps, seed=seed, latents=small)[0].float().numpy()
        else:
            out[label] = generate(pipe, prompt, cfg, h, w, steps, seed=seed, latents=noise)[0].float().numpy()
    return out


def index_grids(grid: tuple[int, int], base: tuple[int, int]) -> dict[str, np.ndarray]:
    """The image RoPE ids ``[H*W, 3]`` each condition's attention sees (for (e) and ResDiT's local
    branch: each token in its nearest window)."""
    part = WindowPartition.build(grid, base)
    return {
        "(b) extrapolated": extrapolated_ids(grid).numpy(),
        "(c) scaled": scaled_ids(grid, base).numpy(),
        "(d)/(e) per-patch": patch_ids(part).numpy(),
    }


def generate_variants(pipe, prompt: str, variants: list[dict], height: int, width: int, steps: int = 20,
                      seed: int = 0, base_size=None, **common) -> list[np.ndarray]:
    """One image ``[3, H, W]`` per :class:`ResDiTConfig` keyword set in ``variants`` (on top of ``common``), all
    from the same noise: the static counterpart of the generation sliders (cutoff x sigma, phase lengths)."""
    from resdit.loading import base_size_of

    base = base_size_of(pipe, base_size)
    toy = hasattr(pipe, "card")
    out = []
    for variant in variants:
        noise = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(seed)) if toy else None
        cfg = ResDiTConfig(base_size=base, **{"mode": "resdit", **common, **variant})
        out.append(generate(pipe, prompt, cfg, height, width, steps, seed=seed, latents=noise)[0].float().numpy())
    return out
