"""The ResDiT attention processor for both FLUX block types.

One processor computes q, k, v once and runs, as the step's phase asks:

* the **global branch**: full attention with the plan's global rotary table (PES) and an
  optional proportional softmax scale;
* the **local branch**: every window (text tokens + its own image tokens) in one batched
  attention call (windows x batch as batch, chunked if asked), with each window's own
  rotary indices (PIPE); text outputs are the mean over windows;
* the **fusion** (:mod:`resdit.fusion`, shared with SD3 and tiling): window-wise spectral fusion (PSF)
  of the two branches' image outputs, spliced with the Gaussian weights (GWS); text outputs from the
  global branch.

Fusing before ``to_out`` equals fusing after it: the output projection mixes channels at
one token, while the FFT, the splice and the average act per channel over tokens.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_flux import _get_qkv_projections

from .memory import attention_window_bytes, window_chunk
from .fusion import merge
from .plan import Plan, pool_grid, unpool_grid
from .schedule import branches


def _added(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    return b if a is None else (a if b is None else a.float().to(b.device) + b)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """FLUX's interleaved real rotary embedding with one table or one table per batch row.

    Args:
        x: ``[B, S, heads, D]``.
        cos, sin: ``[S, D]`` (shared) or ``[B, S, D]`` (per batch row).
    """
    x_real, x_imag = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
    x_rot = torch.stack([-x_imag, x_real], dim=-1).flatten(3)
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)  # broadcast over heads
    return (x.float() * cos + x_rot.float() * sin).to(x.dtype)


def branch_mask(attention_mask: torch.Tensor | None, text_len: int, image_tokens: int,
                name: str = "attention") -> torch.Tensor | None:
    """The stock mask a branch of ``text_len + image_tokens`` tokens gets (None without a mask).

    A mask over the joint sequence (``[B, S]``, ``[B, Q, S]`` or ``[B, heads, Q, S]``, Q = 1 or S; bool or additive;
    Chroma passes the ``[B, 1, S, S]`` outer product of its text-padding mask) may say anything about text, but must
    treat every image token alike: every image query's row equal, and within a row every image key equal. Then any
    branch's mask, whatever image tokens or blocks it holds, is the stock one restricted to them, exactly (a window's
    mask is the stock mask's sub-matrix). A mask that tells image tokens apart is refused.
    """
    if attention_mask is None:
        return None
    m = attention_mask
    m = m[:, None, None, :] if m.ndim == 2 else (m[:, None] if m.ndim == 3 else m)
    T = text_len
    full = m.shape[-2] != 1
    row = m[..., -1:, :]  # an image query's row
    same = (m[..., T:, :] == row).all() if full else True
    uniform = (m[..., T:] == m[..., T:T + 1]).all()
    if not (bool(same) and bool(uniform)):
        raise NotImplementedError(
            f"{name}: an attention mask that tells image tokens apart cannot follow ResDiT's windows and blocks; pass "
            "a mask over text padding only (as ChromaPipeline does), or none.")
    image_row = torch.cat([row[..., :T], row[..., T:T + 1].expand(*row.shape[:-1], image_tokens)], -1)
    if not full:
        return image_row
    text_rows = torch.cat([m[..., :T, :T], m[..., :T, T:T + 1].expand(*m.shape[:2], T, image_tokens)], -1)
    return torch.cat([text_rows, image_row.expand(*m.shape[:2], image_tokens, -1)], -2)


def key_bias_of(mask: torch.Tensor | None) -> torch.Tensor | None:
    """An image query's row of a branch mask as an additive logit bias ``[B, h, 1, k]`` (bool: 0 / -inf)."""
    if mask is None:
        return None
    row = mask[..., -1:, :]
    if row.dtype == torch.bool:
        return torch.zeros(row.shape, device=row.device).masked_fill(~row, float("-inf"))
    return row.float()


class ResDiTAttnProcessor:
    """The branches, shared by every RoPE family: a family's processor computes q, k, v ``[B, T + N, heads, D]``
    (text first, before RoPE) its own way, calls :meth:`run`, and applies its own output projections.

    Reads the current :class:`~resdit.plan.Plan` and phase from the shared state that the family's pre-hook keeps
    up to date once per transformer call.
    """

    _attention_backend = None
    _parallel_config = None
    _ran = None  # what the branches attended with, while an observer listens (the attention hook point)

    def __init__(self, state, name: str):
        self.state = state
        self.name = name

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, mode={self.state.config.mode!r})"

    def run(self, query, key, value, attention_mask=None, plan: Plan | None = None) -> torch.Tensor:
        """This call's phase of the branches on q, k, v: ``[B, T + N, heads * D]`` in q's dtype; emits ``attention``
        (what ran) to observers. ``plan``: another text length's plan of this call (Z-Image's refiner layers)."""
        plan, phase = plan or self.state.plan, self.state.phase
        if query.shape[1] != plan.text_len + plan.image_tokens:
            raise RuntimeError(
                f"{self.name}: sequence of {query.shape[1]} tokens, but the plan expects {plan.text_len} text + "
                f"{plan.image_tokens} image tokens. Was the transformer called with other img_ids than its input?"
            )
        if attention_mask is not None:
            branch_mask(attention_mask, plan.text_len, 1, self.name)  # a mask over text padding only, or a clear error
        self._ran = {} if self.state.listening("attention") else None
        out = self.attend(query, key, value, plan, phase, attention_mask).to(query.dtype)
        if self._ran is not None:
            self.state.emit("attention", self.name, query, key, plan, phase, self._ran)
            self._ran = None
        return out


    def attend(self, query, key, value, plan: Plan, phase: str, attention_mask=None) -> torch.Tensor:
        """Attention output ``[B, T + N, heads * D]`` for one phase (before ``to_out``)."""
        T = plan.text_len
        run_global, run_local = branches(phase)
        glob = None
        if run_global:
            pooled = plan.pooled is not None and plan.pooled.runs_in(phase)
            branch = self.pooled_global_branch if pooled else self.global_branch
            glob = branch(query, key, value, plan, attention_mask)
        text_l, windows_l = self.local_branch(query, key, value, plan, attention_mask) if run_local else (None, None)
        g_img = None if glob is None else glob[:, T:]
        image, fused = merge(phase, self.state.config.spec.fusion, plan.partition, plan.mask, g_img, windows_l)
        if self.state.listening("branches"):
            self._emit_branches(plan, g_img, windows_l, fused)
        return torch.cat([text_l if glob is None else glob[:, :T], image], dim=1)

    def _emit_branches(self, plan: Plan, global_=None, local=None, fused=None) -> None:
        """Emit each branch's image windows ``[B, n, wh, ww, C]`` at the ``branches`` hook point."""
        part = plan.partition
        windows = {}
        for branch, x in (("global", global_), ("local", local), ("fused", fused)):
            if x is None:
                continue
            x = part.gather(x) if branch == "global" else x
            windows[branch] = x.reshape(x.shape[0], x.shape[1], *part.window, x.shape[-1])
        self.state.emit("branches", self.name, plan, windows)

    def global_branch(self, query, key, value, plan: Plan, attention_mask=None) -> torch.Tensor:
        """Full attention with the global table: ``[B, S, heads*D]``."""
        cos, sin = plan.global_rope
        q, k = apply_rope(query, cos, sin), apply_rope(key, cos, sin)
        if self._ran is not None:  # the mask as a key bias, built only for an observer
            mask = key_bias_of(branch_mask(attention_mask, plan.text_len, plan.image_tokens))
            self._note_global(q, k, value, plan.global_scale, mask, plan.grid, (1, 1))
        out = dispatch_attention_fn(
            q, k, value, attn_mask=attention_mask,
            scale=plan.global_scale, backend=self._attention_backend, parallel_config=self._parallel_config,
        )
        return out.flatten(2, 3)

    def _note_global(self, q, k, v, scale, bias, grid, factors) -> None:
        """Keep what the global branch attended with (roped q, k, v, softmax scale, key bias, its token grid and
        block size) for the ``attention`` hook point, when an observer listens."""
        ran = self._ran
        if ran is not None:
            ran["global"] = dict(query=q, key=k, value=v, scale=scale, bias=bias, grid=grid, factors=factors)

    def pooled_global_branch(self, query, key, value, plan: Plan, attention_mask=None) -> torch.Tensor:
        """Global attention of ``p x p`` image blocks (mean q, k, v; RoPE at the block's mean position; each block
        key weighted by its token count), upsampled back: ``[B, S, heads*D]``. Used in the fused phase, where
        PSF keeps only the global branch's frequencies below the cutoff, under the pooled grid's Nyquist limit."""
        T, pooled, grid = plan.text_len, plan.pooled, plan.grid
        p = pooled.factors

        def pool(x):  # [B, T + N, heads, D] -> [B, T + Np, heads, D]
            b, _, heads, d = x.shape
            image = pool_grid(x[:, T:].flatten(2), grid, p).unflatten(-1, (heads, d))
            return torch.cat([x[:, :T], image], dim=1)

        cos, sin = pooled.rope
        bias = None if pooled.key_bias is None else pooled.key_bias.to(query.dtype)[None, None, None, :]
        mask = branch_mask(attention_mask, T, pooled.grid[0] * pooled.grid[1])
        if mask is not None:  # the stock mask on the blocks, beside the block keys' bias
            if mask.dtype == torch.bool:
                mask = torch.zeros(mask.shape, dtype=query.dtype, device=query.device).masked_fill(~mask, float("-inf"))
            bias = mask if bias is None else mask.to(query.dtype) + bias
        q, k, v = apply_rope(pool(query), cos, sin), apply_rope(pool(key), cos, sin), pool(value)
        self._note_global(q, k, v, plan.global_scale, _added(pooled.key_bias, key_bias_of(mask)), pooled.grid,
                          pooled.factors)
        out = dispatch_attention_fn(
            q, k, v, attn_mask=bias,
            scale=plan.global_scale, backend=self._attention_backend, parallel_config=self._parallel_config,
        ).flatten(2, 3)
        return torch.cat([out[:, :T], unpool_grid(out[:, T:], grid, p, pooled.upsampler)], dim=1)

    def local_branch(self, query, key, value, plan: Plan, attention_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Windowed attention, all windows batched (a text-padding mask is restricted to each window's sequence).

        Returns:
            ``(text [B, T, heads*D], windows [B, windows, wh*ww, heads*D])``.
        """
        T, part = plan.text_len, plan.partition
        b, _, heads, d = query.shape
        n, L = part.index.shape
        cos, sin = plan.local_rope
        chunk = window_chunk(self.state.config, n, attention_window_bytes(b, T + L, heads, d, query.element_size()),
                             query.device)
        mask = branch_mask(attention_mask, T, L)
        if self._ran is not None:  # what the windows ran with: their tables, token index and mask
            self._ran["local"] = dict(rope=(cos, sin), partition=part, bias=key_bias_of(mask))
        text_sum, windows = None, []
        for lo in range(0, n, chunk):
            idx = part.index[lo:lo + chunk]
            c = idx.shape[0]

            def fold(x):  # [B, S, heads, D] -> [B * c, T + L, heads, D]
                txt = x[:, :T].unsqueeze(1).expand(b, c, T, heads, d)
                return torch.cat([txt, x[:, T:][:, idx]], dim=2).flatten(0, 1)

            if cos.ndim == 3:  # one table per window
                tc = cos[lo:lo + c].unsqueeze(0).expand(b, -1, -1, -1).flatten(0, 1)
                ts = sin[lo:lo + c].unsqueeze(0).expand(b, -1, -1, -1).flatten(0, 1)
            else:
                tc, ts = cos, sin
            out = dispatch_attention_fn(
                apply_rope(fold(query), tc, ts), apply_rope(fold(key), tc, ts), fold(value),
                attn_mask=None if mask is None else mask.repeat_interleave(c, dim=0),
                backend=self._attention_backend, parallel_config=self._parallel_config,
            ).reshape(b, c, T + L, heads * d)
            part_sum = out[:, :, :T].sum(1)
            text_sum = part_sum if text_sum is None else text_sum + part_sum
            windows.append(out[:, :, T:])
        return text_sum / n, torch.cat(windows, dim=1)


class ResDiTFluxAttnProcessor(ResDiTAttnProcessor):
    """Drop-in replacement for ``FluxAttnProcessor`` (FLUX.1 and Chroma, both block types; FLUX.2's double-stream
    layers with its own ``projections``)."""

    projections = staticmethod(_get_qkv_projections)

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, image_rotary_emb=None) -> torch.Tensor:
        # image_rotary_emb (the stock table of the ids the pipeline passed) is ignored: the plan holds
        # each branch's own tables, built once per resolution.
        query, key, value, eq, ek, ev = self.projections(attn, hidden_states, encoder_hidden_states)
        query = attn.norm_q(query.unflatten(-1, (-1, attn.head_dim)))
        key = attn.norm_k(key.unflatten(-1, (-1, attn.head_dim)))
        value = value.unflatten(-1, (-1, attn.head_dim))
        if attn.added_kv_proj_dim is not None:
            query = torch.cat([attn.norm_added_q(eq.unflatten(-1, (-1, attn.head_dim))), query], dim=1)
            key = torch.cat([attn.norm_added_k(ek.unflatten(-1, (-1, attn.head_dim))), key], dim=1)
            value = torch.cat([ev.unflatten(-1, (-1, attn.head_dim)), value], dim=1)
        out = self.run(query, key, value, attention_mask)
        if encoder_hidden_states is not None:
            T = encoder_hidden_states.shape[1]
            text, image = out.split_with_sizes([T, out.shape[1] - T], dim=1)
            image = attn.to_out[1](attn.to_out[0](image.contiguous()))
            return image, attn.to_add_out(text.contiguous())
        return out
