"""MultiDiffusion-style latent tiling: the whole transformer runs on overlapping base-size tiles.

Every step, the token grid is cut into base-size windows (minimum-overlap starts), all
tiles run through the unchanged transformer as one batch with base position ids, and the
predicted velocities are spliced back, averaged uniformly (MultiDiffusion, Bar-Tal et al.,
2023) or with Gaussian weights (Mixture of Diffusers, Jimenez, 2023).
"""

from __future__ import annotations

import torch

from .fusion import build_partition, merge
from .memory import attention_window_bytes, window_chunk
from .positions import window_ids
from .schedule import LOCAL
from .state import grid_from_ids


def tile_bytes(batch: int, seq: int, heads: int, head_dim: int) -> int:
    """Transient bytes of one tile through one block: its attention plus the 4x-wide MLP."""
    return attention_window_bytes(batch, seq, heads, head_dim) + 4 * batch * seq * heads * head_dim * 8


def tile_chunks(state, part, batch: int, text, device):
    """``(first window, window token index [c, L], rep)`` per chunk of tiles; ``rep`` repeats a per-sample
    tensor ``[B, ...]`` to ``[B * c, ...]`` with the tile index fastest (None stays None)."""
    cfg = state.transformer.config
    seq = part.index.shape[1] + (0 if text is None else text.shape[1])
    n = part.num_windows
    chunk = window_chunk(state.config, n, tile_bytes(batch, seq, cfg.num_attention_heads, cfg.attention_head_dim),
                         device)
    for lo in range(0, n, chunk):
        idx = part.index[lo:lo + chunk]

        def rep(x, c=idx.shape[0]):
            return None if x is None else x.repeat_interleave(c, dim=0)

        yield lo, idx, rep


def tiled_forward(state, original_forward):
    """A replacement for ``FluxTransformer2DModel.forward`` that runs tiles and splices them."""
    from diffusers.models.modeling_outputs import Transformer2DModelOutput

    def forward(hidden_states, encoder_hidden_states=None, pooled_projections=None, timestep=None, img_ids=None,
                txt_ids=None, guidance=None, joint_attention_kwargs=None, return_dict=True, **kwargs):
        if kwargs.get("controlnet_block_samples") is not None:
            raise NotImplementedError("Tiling cannot split ControlNet residuals; use another mode with ControlNet.")
        grid = grid_from_ids(img_ids, hidden_states.shape[1])
        device = hidden_states.device
        part = state.cached(("tiles", grid, str(device)),
                            lambda: build_partition(state.config, grid, state.base_grid).to(device))
        b = hidden_states.shape[0]
        ids = window_ids(part.window).to(img_ids.device)
        outs = []
        for lo, idx, rep in tile_chunks(state, part, b, encoder_hidden_states, hidden_states.device):
            c = idx.shape[0]
            tiles = hidden_states[:, idx].flatten(0, 1)
            out = original_forward(hidden_states=tiles, encoder_hidden_states=rep(encoder_hidden_states),
                                   pooled_projections=rep(pooled_projections), timestep=rep(timestep), img_ids=ids,
                                   txt_ids=txt_ids, guidance=rep(guidance), joint_attention_kwargs=joint_attention_kwargs,
                                   return_dict=False)[0]
            outs.append(out.view(b, c, idx.shape[1], -1))
        sample, _ = merge(LOCAL, state.config.spec.fusion, part, None, local_windows=torch.cat(outs, dim=1))
        return Transformer2DModelOutput(sample=sample) if return_dict else (sample,)

    return forward
