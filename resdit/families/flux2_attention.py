"""FLUX.2's two attention layouts with ResDiT's branches (:class:`~resdit.processors.ResDiTAttnProcessor`).

* ``Flux2Attention`` (double-stream blocks): separate image and text projections, as FLUX.1's.
* ``Flux2ParallelSelfAttention`` (single-stream blocks): one projection yields q, k, v and the MLP's input; the
  attention output and the MLP's activation are concatenated before one output projection.

Only the attention between the projections changes; the projections, norms and the MLP half are the stock ones.
"""

from __future__ import annotations

import torch
from diffusers.models.transformers.transformer_flux2 import _get_qkv_projections

from ..processors import ResDiTAttnProcessor, ResDiTFluxAttnProcessor


def _no_kv_cache(name: str, kwargs: dict) -> None:
    if kwargs.get("kv_cache") is not None or kwargs.get("kv_cache_mode") is not None:
        raise NotImplementedError(f"{name}: FLUX.2's reference-image KV cache (editing) does not combine with ResDiT; "
                                  "generate without reference images.")


class ResDiTFlux2AttnProcessor(ResDiTFluxAttnProcessor):
    """Drop-in replacement for ``Flux2AttnProcessor`` (double-stream layers): FLUX.1's layout, FLUX.2's projections."""

    projections = staticmethod(_get_qkv_projections)

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, image_rotary_emb=None, **kwargs):
        _no_kv_cache(self.name, kwargs)
        if encoder_hidden_states is None:  # not a layout FLUX.2 builds: its single-stream layers are parallel
            raise NotImplementedError(f"{self.name}: FLUX.2's double-stream attention without a text stream.")
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask)


class ResDiTFlux2ParallelProcessor(ResDiTAttnProcessor):
    """Drop-in replacement for ``Flux2ParallelSelfAttnProcessor`` (text and image in one sequence)."""

    def __call__(self, attn, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 image_rotary_emb=None, **kwargs) -> torch.Tensor:
        _no_kv_cache(self.name, kwargs)
        projected = attn.to_qkv_mlp_proj(hidden_states)
        qkv_dim = 3 * attn.inner_dim
        mlp_dim = attn.mlp_hidden_dim * attn.mlp_mult_factor
        local_qkv = projected.shape[-1] * qkv_dim // (qkv_dim + mlp_dim)
        qkv, mlp = torch.split(projected, [local_qkv, projected.shape[-1] - local_qkv], dim=-1)
        query, key, value = (x.unflatten(-1, (-1, attn.head_dim)) for x in qkv.chunk(3, dim=-1))
        out = self.run(attn.norm_q(query), attn.norm_k(key), value, attention_mask)
        return attn.to_out(torch.cat([out, attn.mlp_act_fn(mlp)], dim=-1))


def processor_for(state, name: str, stock) -> ResDiTAttnProcessor:
    """The ResDiT processor that replaces a stock FLUX.2 processor (by its kind)."""
    kind = type(stock).__name__
    if "Parallel" in kind:
        return ResDiTFlux2ParallelProcessor(state, name)
    return ResDiTFlux2AttnProcessor(state, name)
