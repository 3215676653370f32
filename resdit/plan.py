"""Everything ResDiT needs for one resolution, built once per generation and size.

A :class:`Plan` holds the window partition, the rotary tables of both branches, the PSF
mask and the global branch's attention scale. Layers and steps share it: rotary tables are
never rebuilt per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import ResDiTConfig, ResDiTConfigError
from .fusion import build_partition
from .geometry import WindowPartition
from .positions import dynamic_ntk_frequencies, global_ids, ntk_frequencies, rope_table, scale_factors, window_ids
from .schedule import FUSED, GLOBAL
from .spectral import radial_mask


@dataclass
class Plan:
    """Per-resolution tensors.

    Attributes:
        grid, base: image token grids ``(H, W)`` now and at training size.
        text_len: number of text tokens T (text comes first in FLUX's joint sequence).
        partition: the local branch's windows.
        global_ids, local_ids: image ids ``[H*W, 3]`` and ``[windows, wh*ww, 3]`` (float32).
        global_rope: ``(cos, sin)`` each ``[T + H*W, head_dim]``.
        local_rope: ``(cos, sin)`` each ``[T + wh*ww, head_dim]`` (one table for all windows)
            or ``[windows, T + wh*ww, head_dim]`` (per window).
        mask: PSF mask ``[wh, ww // 2 + 1]``.
        global_scale: softmax scale of the global branch (None: the default ``1/sqrt(d)``).
        pooled: the fused phase's pooled global branch (``config.pool > 1``), else None.
        cutoff: the PSF cutoff of ``mask`` (:meth:`resdit.config.ResDiTConfig.psf_cutoff`).
    """

    grid: tuple[int, int]
    base: tuple[int, int]
    text_len: int
    partition: WindowPartition
    global_ids: torch.Tensor
    local_ids: torch.Tensor | None
    global_rope: tuple[torch.Tensor, torch.Tensor]
    local_rope: tuple[torch.Tensor, torch.Tensor] | None
    mask: torch.Tensor
    global_scale: float | None
    pooled: "PooledGlobal | None" = None
    cutoff: float = 0.2

    @property
    def image_tokens(self) -> int:
        return self.grid[0] * self.grid[1]


@dataclass
class PooledGlobal:
    """The global branch on ``ph x pw`` blocks of the image grid (the last row and column of blocks may be partial).

    Attributes:
        factors: ``(ph, pw)``.
        grid: pooled grid ``(ceil(H / ph), ceil(W / pw))``.
        rope: ``(cos, sin)`` each ``[T + Hp*Wp, head_dim]``: text, then each block's mean position.
        key_bias: ``[T + Hp*Wp]`` added to the logits (0 for text, ``log(tokens in the block)`` for a block, so a
            block's key carries the attention mass of the tokens it stands for), or None (no bias).
        phases: ``"all"`` or ``"fused"``: where the pooled branch replaces the full one.
        upsampler: ``"bilinear"`` or ``"fft"`` (:func:`unpool_grid`).
    """

    factors: tuple[int, int]
    grid: tuple[int, int]
    rope: tuple[torch.Tensor, torch.Tensor]
    key_bias: torch.Tensor | None
    phases: str = "fused"
    upsampler: str = "bilinear"

    def runs_in(self, phase: str) -> bool:
        return phase == FUSED or (self.phases == "all" and phase == GLOBAL)


def base_token_factors(grid: tuple[int, int], base: tuple[int, int]) -> tuple[int, int]:
    """Per-axis block sizes ``(ceil(H/h), ceil(W/w))``: the smallest whole blocks whose grid
    ``(ceil(H/ph), ceil(W/pw))`` has at most the base size's rows and columns, so at most its token count.

    Example:
        >>> base_token_factors((80, 80), (32, 32)), base_token_factors((64, 128), (32, 32))
        ((3, 3), (2, 4))
    """
    return tuple(max(1, -(-g // b)) for g, b in zip(grid, base))


def block_counts(grid: tuple[int, int], factors) -> torch.Tensor:
    """Tokens in each ``ph x pw`` block of a grid ``[Hp, Wp]`` (the last row and column of blocks may be partial)."""
    ph, pw = _factors(factors)
    rows = torch.tensor([min(ph, grid[0] - i) for i in range(0, grid[0], ph)], dtype=torch.float32)
    cols = torch.tensor([min(pw, grid[1] - j) for j in range(0, grid[1], pw)], dtype=torch.float32)
    return rows[:, None] * cols[None, :]


def _factors(p) -> tuple[int, int]:
    return (p, p) if isinstance(p, int) else tuple(p)


def pool_grid(x: torch.Tensor, grid: tuple[int, int], p) -> torch.Tensor:
    """Mean over ``p x p`` (or ``ph x pw``) blocks of row-major tokens ``[B, H*W, C]`` -> ``[B, Hp*Wp, C]``
    (partial edge blocks average the tokens they hold)."""
    p = _factors(p)
    b, _, c = x.shape
    image = x.transpose(1, 2).reshape(b, c, *grid)
    pooled = torch.nn.functional.avg_pool2d(image, p, p, ceil_mode=True, count_include_pad=False)
    return pooled.flatten(2).transpose(1, 2)


def unpool_grid(x: torch.Tensor, grid: tuple[int, int], p, upsampler: str = "bilinear") -> torch.Tensor:
    """Block outputs ``[B, Hp*Wp, C]`` back to ``[B, H*W, C]``: ``"bilinear"`` (block centres land on the centres
    of their tokens) or ``"fft"`` (:func:`fft_upsample`)."""
    ph, pw = _factors(p)
    b, _, c = x.shape
    hp, wp = -(-grid[0] // ph), -(-grid[1] // pw)
    image = x.transpose(1, 2).reshape(b, c, hp, wp)
    if upsampler == "fft":
        up = fft_upsample(image, (ph, pw))
    else:
        up = torch.nn.functional.interpolate(image, size=(hp * ph, wp * pw), mode="bilinear", align_corners=False)
    return up[:, :, :grid[0], :grid[1]].flatten(2).transpose(1, 2)


def fft_upsample(x: torch.Tensor, factors: tuple[int, int]) -> torch.Tensor:
    """Band-limited inverse of ``ph x pw`` block means ``[..., Hp, Wp]`` -> ``[..., Hp*ph, Wp*pw]``.

    The block mean of a field ``u`` samples ``u * box`` at the block centres; its spectrum is ``U`` times the
    box's response ``D_p(f) = sin(pi p f) / (p sin(pi f))``. Zero-padding the pooled spectrum (centred on the block
    centres) and dividing by ``D_p`` returns ``u`` exactly when ``u`` is periodic on the grid and has no frequency at
    or above the pooled Nyquist limit ``1 / (2p)`` cycles per token; the Nyquist bin of an even pooled axis is
    split between its two signs. Computed in float32 (float64 for float64 input).
    """
    dtype = x.dtype
    y = x.double() if dtype == torch.float64 else x.float()
    for axis, p in zip((-2, -1), factors):
        if p > 1:
            y = _fft_upsample_axis(y, axis, p)
    return y.to(dtype)


def _fft_upsample_axis(x: torch.Tensor, axis: int, p: int) -> torch.Tensor:
    n = x.shape[axis]
    big = n * p
    spec = torch.fft.fft(x, dim=axis)
    k = torch.fft.fftfreq(n, device=x.device, dtype=torch.float64) * n
    # block centres sit at p*i + (p-1)/2 fine tokens: shift the pooled samples onto the fine grid's origin
    f = k / big  # cycles per fine token
    response = torch.where(f == 0, torch.ones_like(f), torch.sin(torch.pi * p * f) / (p * torch.sin(torch.pi * f)))
    shift = torch.exp(-2j * torch.pi * f * (p - 1) / 2)
    spec = spec * (shift / response).to(spec.dtype).reshape(-1, *([1] * (-axis - 1)))
    out_shape = list(x.shape)
    out_shape[axis] = big
    full = torch.zeros(out_shape, dtype=spec.dtype, device=x.device)
    half = n // 2
    pos = [slice(None)] * x.ndim
    src = [slice(None)] * x.ndim
    pos[axis], src[axis] = slice(0, half + 1 if n % 2 else half), slice(0, half + 1 if n % 2 else half)
    full[tuple(pos)] = spec[tuple(src)]
    neg = n - (half + 1 if n % 2 else half)
    if neg:
        pos[axis], src[axis] = slice(big - neg, big), slice(n - neg, n)
        full[tuple(pos)] = spec[tuple(src)]
    if n % 2 == 0 and n > 1:  # split the Nyquist bin between +n/2 and -n/2
        pos[axis], src[axis] = slice(half, half + 1), slice(half, half + 1)
        nyq = spec[tuple(src)] / 2
        full[tuple(pos)] = nyq
        pos[axis] = slice(big - half, big - half + 1)
        full[tuple(pos)] = nyq
    return torch.fft.ifft(full, dim=axis).real * p


def _pooled_global(positions, txt, gids, grid, base, variant, factors: tuple[int, int], key_bias: bool = True,
                   phases: str = "fused", upsampler: str = "bilinear", frame=None) -> PooledGlobal:
    ids = pool_grid(gids[None].double(), grid, factors)[0].float()
    counts = block_counts(grid, factors)
    bias = None
    if key_bias:
        bias = torch.cat([torch.zeros(txt.shape[0], device=gids.device), counts.reshape(-1).to(gids.device).log()])
    rope = positions.table(txt, ids, frame, variant, grid, base)
    return PooledGlobal(tuple(factors), tuple(counts.shape), tuple(rope), bias, phases, upsampler)


def proportional_scale(image_tokens: int, base_tokens: int, head_dim: int) -> float | None:
    """``sqrt(log N / log n) / sqrt(d)`` for N > n (I-Max, Lumina-Next); None otherwise."""
    if image_tokens <= base_tokens or base_tokens < 2:
        return None
    return math.sqrt(math.log(image_tokens) / math.log(base_tokens)) / math.sqrt(head_dim)


def rope_variant(cfg: ResDiTConfig, progress: float | None, sigma: float | None) -> tuple[str, str, float]:
    """``(global ids kind, frequency kind, parameter)`` of the global branch at one step.

    ``progress`` is ``step / num_steps``; ``sigma`` the noise level in [0, 1] (flow matching).
    """
    spec = cfg.spec
    if spec.rope == "base":
        return spec.global_ids, "base", 0.0
    if spec.rope == "ntk":
        return "extrapolate", "ntk", cfg.ntk_factor
    if spec.rope == "time_aware":
        if progress is None or progress < cfg.watershed:
            return "scaled", "base", 0.0
        return "extrapolate", "ntk", cfg.ntk_factor
    if spec.rope == "dype":
        t = 1.0 if sigma is None else min(max(sigma, 0.0), 1.0)
        return "extrapolate", "dynamic", round(t * t, 4)
    raise ResDiTConfigError(f"Unknown RoPE variant {spec.rope!r}.")


def _global_rope(pos_embed, ids: torch.Tensor, variant, grid, base):
    """Global rotary table for ids ``[S, n]`` (columns 1 and 2: row and column) under a frequency variant."""
    _, kind, param = variant
    if kind == "base":
        return pos_embed(ids)
    axes, theta = list(pos_embed.axes_dim), pos_embed.theta
    scales = (1.0, *scale_factors(grid, base))  # axis 0 (unused by FLUX images) keeps its frequencies
    rest = [None] * (len(axes) - 3)  # axes after row and column (FLUX.2's layer) keep their frequencies
    if kind == "ntk":
        freqs = [None] + [ntk_frequencies(axes[a], theta, scales[a], param) for a in (1, 2)] + rest
    elif kind == "dynamic":  # scale decays from s (pure noise, t = 1) to 1 (clean) as 1 + (s - 1) t^2
        freqs = [None] + [dynamic_ntk_frequencies(axes[a], theta, 1 + (scales[a] - 1) * param) for a in (1, 2)] + rest
    else:
        raise ResDiTConfigError(f"Unknown frequency variant {kind!r}.")
    return rope_table(ids, axes, theta, freqs)


class FluxPositions:
    """Rotary tables from FLUX-layout ids: text ids as the pipeline passed them, then image ids ``(0, row, col)``
    (widened to the model's id width), through the model's own ``pos_embed`` (FLUX.1, Chroma, FLUX.2).

    A family with another position scheme gives :func:`build_plan` its own object with this ``table`` method
    (Qwen-Image: centred positions and a text offset, :mod:`resdit.families.qwenimage`)."""

    def __init__(self, pos_embed):
        self.pos_embed = pos_embed

    def table(self, txt: torch.Tensor, image_ids: torch.Tensor, frame, variant=None, grid=None, base=None):
        """``(cos, sin)`` each ``[T + N, head_dim]``; ``frame``: the grid the image ids span (unused here)."""
        return _global_rope(self.pos_embed, torch.cat([txt, image_ids]), variant or ("", "base", 0.0), grid, base)


def widen(ids: torch.Tensor, width: int) -> torch.Tensor:
    """Image ids ``[N, 3]`` = ``(0, row, col)`` with zero columns appended up to the model's id width (FLUX.2:
    ``(t, row, col, layer)`` with the generated image at ``t = 0, layer = 0``)."""
    if width == ids.shape[-1]:
        return ids
    return torch.cat([ids, ids.new_zeros(*ids.shape[:-1], width - ids.shape[-1])], -1)


def pool_factors(cfg: ResDiTConfig, grid: tuple[int, int], base: tuple[int, int]) -> tuple[int, int]:
    """The global branch's block size ``(ph, pw)`` for a config at a grid: ``(1, 1)`` (no pooling) at or below the
    base size, for modes without a phased global branch, and with neither ``global_tokens="base"`` nor
    ``global_pool``."""
    if cfg.spec.schedule != "phased" or (grid[0] <= base[0] and grid[1] <= base[1]):
        return 1, 1
    if cfg.tokens == "base":
        return base_token_factors(grid, base)
    return (cfg.pool, cfg.pool)


def build_plan(cfg: ResDiTConfig, pos_embed, grid: tuple[int, int], base: tuple[int, int], txt_ids: torch.Tensor,
               head_dim: int, device, variant: tuple[str, str, float] | None = None) -> Plan:
    """Build the :class:`Plan` for one image grid.

    Args:
        pos_embed: the model's ``FluxPosEmbed`` (ids ``[S, n]`` -> ``(cos, sin)``), or a positions object with a
            ``table`` method (:class:`FluxPositions` is the default wrapper).
        txt_ids: ``[T, 3]`` text ids as the pipeline passed them.
        variant: from :func:`rope_variant` (None: the mode's own index grid, base frequencies).
    """
    spec = cfg.spec
    variant = variant or (spec.global_ids, "base", 0.0)
    if min(grid) < 1:
        raise ResDiTConfigError(f"Empty token grid {grid}.")
    partition = build_partition(cfg, grid, base)
    wh, ww = partition.window
    if spec.local_ids is not None and min(wh, ww) < 2:
        raise ResDiTConfigError(
            f"Windows of {wh}x{ww} tokens are too small for the local branch; the image grid {grid} must be at "
            "least 2 tokens along each axis."
        )
    positions = pos_embed if hasattr(pos_embed, "table") else FluxPositions(pos_embed)
    txt = txt_ids.to(device=device, dtype=torch.float32)
    gids = widen(global_ids(variant[0], grid, base, partition), txt.shape[-1]).to(device)
    # the grid the global ids span: the image's own (extrapolated), the base size's (scaled) or a window's (per patch)
    frame = {"extrapolate": grid, "scaled": base}.get(variant[0], (wh, ww))
    global_rope = positions.table(txt, gids, frame, variant, grid, base)
    local_ids = local_rope = None
    if spec.local_ids == "window":
        local_ids = widen(window_ids((wh, ww)), txt.shape[-1]).to(device).expand(partition.num_windows, -1, -1)
        local_rope = positions.table(txt, local_ids[0], (wh, ww))
    elif spec.local_ids == "global":
        part = partition.to(device)
        local_ids = gids[part.index]
        text_rows = torch.arange(txt.shape[0], device=device).expand(partition.num_windows, -1)
        rows = torch.cat([text_rows, part.index + txt.shape[0]], 1)  # [windows, T + L]
        local_rope = tuple(t[rows] for t in global_rope)
    scale = (proportional_scale(grid[0] * grid[1], base[0] * base[1], head_dim)
             if cfg.uses_proportional_attention else None)
    factors = pool_factors(cfg, grid, base)
    pooled = None
    if factors != (1, 1):
        pooled = _pooled_global(positions, txt, gids, grid, base, variant, factors, cfg.uses_key_bias,
                                cfg.pooled_phases, cfg.upsampling, frame)
    cutoff = cfg.psf_cutoff(factors)
    return Plan(grid, base, txt.shape[0], partition.to(device), gids, local_ids, tuple(global_rope),
                None if local_rope is None else tuple(local_rope), radial_mask((wh, ww), cutoff).to(device), scale,
                pooled, cutoff)
