"""Z-Image's single-stream attention with ResDiT's branches (:mod:`resdit.families.zimage`)."""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention

from ..processors import ResDiTAttnProcessor


def _rotate(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Z-Image's own rotation: channel pairs as complex numbers times ``freqs`` ``[B, S, D / 2]``."""
    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(z * freqs.unsqueeze(2)).flatten(3).type_as(x)


class ResDiTZImageAttnProcessor(ResDiTAttnProcessor):
    """Drop-in replacement for ``ZSingleStreamAttnProcessor`` in the image refiner and the joint layers: the image
    grid is the first ``H * W`` tokens of the sequence; every other token is rotated by the model's own table and
    enters the branches as text."""

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, freqs_cis: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = (proj(hidden_states).unflatten(-1, (attn.heads, -1)) for proj in (attn.to_q, attn.to_k, attn.to_v))
        q = attn.norm_q(q) if attn.norm_q is not None else q
        k = attn.norm_k(k) if attn.norm_k is not None else k
        S, N = hidden_states.shape[1], self.state.plan.image_tokens
        # the model's rotation for every token but the grid's rows and columns (the branches give those their own)
        keep = freqs_cis.clone()
        keep[:, :N, self.state.transformer.rope_embedder.axes_dims[0] // 2:] = 1
        q, k = _rotate(q, keep), _rotate(k, keep)
        order = torch.cat([torch.arange(N, S), torch.arange(N)]).to(hidden_states.device)  # extras, then the grid
        back = torch.argsort(order)
        mask = attention_mask
        if mask is not None:
            mask = (mask[:, None, None, :] if mask.ndim == 2 else mask)[..., order]
        plan = self.state.plan_for_text(S - N)
        out = self.run(q[:, order], k[:, order], v[:, order], mask, plan=plan)[:, back]
        out = attn.to_out[0](out)
        return attn.to_out[1](out) if len(attn.to_out) > 1 else out


def install_zimage(state, call_inputs) -> None:
    """Processors on the image refiner's and the joint layers' attention, module by module (the model has no
    ``set_attn_processor``; the caption refiner stays stock), and the pre-hook that prepares each call.

    A ControlNet (``ZImageControlNetModel``) holds the transformer's own refiners (``from_transformer``): those keep
    the transformer's processors, and the ControlNet's pre-hook prepares the transformer's state too, since the
    pipeline calls the ControlNet first in every step."""
    transformer = state.transformer
    owners = []
    for name, module in transformer.named_modules():
        if not isinstance(module, Attention) or name.startswith("context_refiner"):
            continue
        original = module.processor
        if isinstance(original, ResDiTAttnProcessor):  # a module shared with the transformer, installed there
            if original.state is not state and original.state not in owners:
                owners.append(original.state)
            continue
        module.set_processor(ResDiTZImageAttnProcessor(state, name))
        state.on_undo(lambda m=module, o=original: m.set_processor(o))

    from .flux import prepare_each_call

    def prepare_all(module, args, kwargs):
        inputs = call_inputs(module, args, kwargs)
        for owner in owners:
            owner.prepare(**inputs)
        return inputs

    prepare_each_call(state, prepare_all if owners else call_inputs)
