"""Qwen-Image's double-stream attention with ResDiT's branches: the stock projections and norms of each stream,
``[text, image]`` through :meth:`~resdit.processors.ResDiTAttnProcessor.run` with the stock text-padding key mask,
the stock output projections."""

from __future__ import annotations

import torch

from ..processors import ResDiTAttnProcessor


class ResDiTQwenAttnProcessor(ResDiTAttnProcessor):
    """Drop-in replacement for ``QwenDoubleStreamAttnProcessor2_0``."""

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor = None,
                 encoder_hidden_states_mask: torch.Tensor = None, attention_mask: torch.Tensor | None = None,
                 image_rotary_emb=None) -> tuple[torch.Tensor, torch.Tensor]:
        if encoder_hidden_states is None or attention_mask is not None:
            raise ValueError(f"{self.name}: Qwen-Image's attention takes the text stream and no external mask.")
        mask = None
        if encoder_hidden_states_mask is not None:
            image = torch.ones(hidden_states.shape[:2], dtype=torch.bool, device=hidden_states.device)
            mask = torch.cat([encoder_hidden_states_mask, image], dim=1)[:, None, None, :]
        head_dim = attn.inner_dim // attn.heads

        def heads(x):
            return x.unflatten(-1, (-1, head_dim))

        iq, ik, iv = heads(attn.to_q(hidden_states)), heads(attn.to_k(hidden_states)), heads(attn.to_v(hidden_states))
        tq, tk = heads(attn.add_q_proj(encoder_hidden_states)), heads(attn.add_k_proj(encoder_hidden_states))
        tv = heads(attn.add_v_proj(encoder_hidden_states))
        iq = attn.norm_q(iq) if attn.norm_q is not None else iq
        ik = attn.norm_k(ik) if attn.norm_k is not None else ik
        tq = attn.norm_added_q(tq) if attn.norm_added_q is not None else tq
        tk = attn.norm_added_k(tk) if attn.norm_added_k is not None else tk
        out = self.run(torch.cat([tq, iq], 1), torch.cat([tk, ik], 1), torch.cat([tv, iv], 1), mask)
        T = encoder_hidden_states.shape[1]
        text, image = out[:, :T], out[:, T:]
        image = attn.to_out[0](image.contiguous())
        if len(attn.to_out) > 1:
            image = attn.to_out[1](image)
        return image, attn.to_add_out(text.contiguous())
