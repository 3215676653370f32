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
from .plan import widen
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


#: keyword arguments that are not per-sample tensors: passed to every tile as they are
_SHARED = ("img_ids", "txt_ids", "joint_attention_kwargs", "return_dict", "attention_mask")


def tiled_forward(state, original_forward):
    """A replacement for a FLUX-like transformer's ``forward`` (FLUX, Chroma) that runs tiles and splices them.

    Per-sample tensors (first dimension the batch) are repeated per tile; an ``attention_mask`` ``[B, T + N]``
    (Chroma's text padding) keeps its text part and each tile's own image entries."""
    import inspect

    from diffusers.models.modeling_outputs import Transformer2DModelOutput

    signature = inspect.signature(original_forward)

    def forward(*args, **kwargs):
        kwargs = dict(signature.bind(*args, **kwargs).arguments)
        if kwargs.get("controlnet_block_samples") is not None:
            raise NotImplementedError("Tiling cannot split ControlNet residuals; use another mode with ControlNet.")
        hidden_states, img_ids = kwargs.pop("hidden_states"), kwargs["img_ids"]
        return_dict = kwargs.pop("return_dict", True)
        grid = grid_from_ids(img_ids, hidden_states.shape[1])
        device = hidden_states.device
        part = state.cached(("tiles", grid, str(device)),
                            lambda: build_partition(state.config, grid, state.base_grid).to(device))
        b = hidden_states.shape[0]
        text = kwargs.get("encoder_hidden_states")
        mask = kwargs.get("attention_mask")
        outs = []
        for lo, idx, rep in tile_chunks(state, part, b, text, device):
            c = idx.shape[0]
            tile = {k: rep(v) if k not in _SHARED and torch.is_tensor(v) and v.shape[:1] == (b,) else v
                    for k, v in kwargs.items()}
            tile["img_ids"] = widen(window_ids(part.window), img_ids.shape[-1]).to(img_ids.device)
            if mask is not None:  # [B, T + N]: each tile keeps the text part and its own image tokens' entries
                t = mask.shape[1] - hidden_states.shape[1]
                tile["attention_mask"] = torch.cat([rep(mask[:, :t]), mask[:, t:][:, idx].flatten(0, 1)], 1)
            out = original_forward(hidden_states=hidden_states[:, idx].flatten(0, 1), return_dict=False, **tile)[0]
            outs.append(out.view(b, c, idx.shape[1], -1))
        sample, _ = merge(LOCAL, state.config.spec.fusion, part, None, local_windows=torch.cat(outs, dim=1))
        return Transformer2DModelOutput(sample=sample) if return_dict else (sample,)

    return forward
