"""FLUX.2 (``Flux2Transformer2DModel``; FLUX.2 [dev] and the small [klein] models): RoPE over integer
``(t, row, col, layer)`` ids (theta 2000, four axes) that the pipeline passes as ``img_ids`` / ``txt_ids``
``[B, S, 4]``;
double-stream blocks with FLUX.1's layout and single-stream blocks whose one projection feeds attention and MLP.

ResDiT reads the grid from the row and column columns, gives the generated image ``t = 0, layer = 0`` in every
branch (the stock ids), and keeps the text ids as the pipeline built them. Reference images (editing: their tokens
join the sequence with their own ``t``) and the reference KV cache are refused with a clear error.
"""

from __future__ import annotations

from .base import Family, register
from .flux import install_flux


def _install(state, controlnet: bool = False) -> None:
    from .flux2_attention import processor_for

    install_flux(state, controlnet, processor=processor_for)


def _base_mu(scheduler, base_grid, num_steps) -> float:
    """FLUX.2's pipelines shift by ``compute_empirical_mu(tokens, steps)``; here at the base size's tokens."""
    from diffusers.pipelines.flux2.pipeline_flux2 import compute_empirical_mu

    return compute_empirical_mu(base_grid[0] * base_grid[1], num_steps)


FLUX2 = register(Family(
    name="flux2", label="FLUX.2", transformers=("Flux2Transformer2DModel",), pipelines=("Flux2",), install=_install,
    base_mu=_base_mu,
))
