"""The one place where the branches meet: the window partition both use, and how a phase turns the global
branch's tokens and the local branch's windows into one output.

FLUX's attention processor (attention outputs), SD3's forward (velocities) and latent tiling (velocities
of base-size tiles) all go through :func:`merge`:

* ``global``: the global branch's tokens as they are;
* ``local``: the local windows spliced with the partition's weights (GWS, or uniform);
* ``fused``: per window, PSF (global low frequencies, local high ones) or the spatial average, then
  spliced.

Example:
    >>> import torch
    >>> from resdit.config import ResDiTConfig
    >>> part = build_partition(ResDiTConfig(mode="resdit"), (12, 12), (8, 8))
    >>> windows = torch.ones(1, part.num_windows, 64, 3)
    >>> tokens, _ = merge("local", "spectral", part, None, local_windows=windows)
    >>> torch.allclose(tokens, torch.ones(1, 144, 3))
    True
"""

from __future__ import annotations

import torch

from .config import ResDiTConfig
from .geometry import WindowPartition
from .schedule import FUSED, GLOBAL, LOCAL
from .spectral import spectral_fuse


def build_partition(config: ResDiTConfig, grid: tuple[int, int], base: tuple[int, int]) -> WindowPartition:
    """The windows of a mode over a token grid: the base size, its layout (MOP or grid, MOP's starts aligned to
    ``config.align`` tokens, neighbours overlapping by at least ``config.overlap``) and splice weights."""
    spec = config.spec
    return WindowPartition.build(grid, base, layout=spec.windows, weighting=config.weighting, sigma=config.splice_width,
                                 align=config.align, min_overlap=config.overlap)


def merge(phase: str, fusion: str, part: WindowPartition, mask: torch.Tensor | None,
          global_tokens: torch.Tensor | None = None,
          local_windows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One output from the branches a phase ran.

    Args:
        phase: ``"global"``, ``"local"`` or ``"fused"``.
        fusion: ``"spectral"`` (PSF) or ``"average"``, for the fused phase.
        mask: PSF mask ``[wh, ww // 2 + 1]`` (:func:`resdit.spectral.radial_mask`).
        global_tokens: ``[B, H*W, C]``; local_windows: ``[B, windows, wh*ww, C]``.

    Returns:
        ``(tokens [B, H*W, C], fused windows [B, windows, wh*ww, C] or None)``.
    """
    if phase == GLOBAL:
        return global_tokens, None
    if phase == LOCAL:
        return part.splice(local_windows), None
    if phase != FUSED:
        raise ValueError(f"Unknown phase {phase!r}.")
    if fusion == "average":
        return 0.5 * (global_tokens + part.splice(local_windows)), None
    b, n, L, ch = local_windows.shape
    shape = (b, n, *part.window, ch)
    fused = spectral_fuse(part.gather(global_tokens).view(shape), local_windows.view(shape), mask).view(b, n, L, ch)
    return part.splice(fused), fused
