"""A FLOP model of a FLUX transformer forward per mode and phase.

Counts multiply-adds as 2 FLOPs. Per token and block, FLUX's linear layers cost ``24 d^2``
FLOPs (dual stream: q, k, v, out = 4 d^2 and a 4x MLP = 8 d^2 multiply-adds, per stream;
single stream: q, k, v = 3 d^2, MLP-in = 4 d^2, out from 5 d = 5 d^2); attention over a
sequence of S tokens costs ``4 S^2 d`` (``q k^T`` and ``p v``). The embedders and the final
projection add ``2 (c_in d + t_dim d + c_out d)`` per token. Per-batch terms (AdaLN
modulation, time embedding) do not grow with the image and are left out. The FFT fusion and
the splice are O(N log N) element work, also left out.

Example:
    >>> cfg = dict(num_layers=19, num_single_layers=38, attention_head_dim=128, num_attention_heads=24,
    ...            in_channels=64, joint_attention_dim=4096)
    >>> f = step_flops(cfg, (128, 128), (64, 64), text_len=512, phase="global")
    >>> round(f / 1e12, 1)   # TFLOPs of one direct step of FLUX.1-dev at 2048x2048
    418.1
"""

from __future__ import annotations

from dataclasses import dataclass

from .geometry import WindowPartition
from .schedule import FUSED, GLOBAL, LOCAL, phase_lengths


def _dims(config) -> tuple[int, int, int, int, int]:
    c = dict(config)
    d = c["attention_head_dim"] * c["num_attention_heads"]
    return d, c["num_layers"], c["num_single_layers"], c["in_channels"], c.get("joint_attention_dim", 4096)


def linear_flops(config, image_tokens: int, text_tokens: int) -> float:
    """Token-wise linear FLOPs of one forward (all blocks, embedders, output)."""
    d, dual, single, c_in, t_dim = _dims(config)
    per_token = 24 * d * d
    blocks = (dual + single) * (image_tokens + text_tokens) * per_token
    io = 2 * (image_tokens * c_in * d + text_tokens * t_dim * d + image_tokens * d * c_in)
    return float(blocks + io)


def attention_flops(config, seq: int, batch_windows: int = 1) -> float:
    """Attention FLOPs of all layers for ``batch_windows`` sequences of ``seq`` tokens."""
    d, dual, single, *_ = _dims(config)
    return float((dual + single) * batch_windows * 4 * seq * seq * d)


def step_flops(config, grid: tuple[int, int], base: tuple[int, int], text_len: int, phase: str,
               windows: str = "mop") -> float:
    """FLOPs of one forward in a phase: ``"global"`` (= direct), ``"local"``, ``"fused"``, ``"tiling"``."""
    n = grid[0] * grid[1]
    part = WindowPartition.build(grid, base, layout=windows)
    L = part.window[0] * part.window[1]
    lin = linear_flops(config, n, text_len)
    glob = attention_flops(config, text_len + n)
    local = attention_flops(config, text_len + L, part.num_windows)
    if phase == GLOBAL:
        return lin + glob
    if phase == LOCAL:
        return lin + local
    if phase == FUSED:
        return lin + glob + local
    if phase == "tiling":
        return part.num_windows * (linear_flops(config, L, text_len) + attention_flops(config, text_len + L))
    raise ValueError(f"Unknown phase {phase!r}.")


def two_stage_steps(steps: int, strength: float) -> int:
    """Steps the second (target-size) pass of ``two_stage`` runs, counted as diffusers' img2img does."""
    return steps - int(max(steps - min(steps * strength, steps), 0))


def step_rows(config, grid: tuple[int, int], base: tuple[int, int], text_len: int, phase: str,
              windows: str = "mop") -> float:
    """Token rows one forward touches with element-wise work, summed over blocks (norms, modulation,
    activations, RoPE, the local branch's gathers and splices): ``T + N`` per block for the model's
    own tokens, plus ``n (T + L)`` folded rows per block for a local branch; tiling runs ``n`` whole
    tiles. FLOPs do not see this work; on CPUs it is a large share of a windowed step."""
    _, dual, single, *_ = _dims(config)
    n_img = grid[0] * grid[1]
    part = WindowPartition.build(grid, base, layout=windows)
    folded = part.num_windows * (text_len + part.window[0] * part.window[1])
    own = text_len + n_img
    per_block = {GLOBAL: own, LOCAL: own + folded, FUSED: 2 * own + folded, "tiling": folded}
    if phase not in per_block:
        raise ValueError(f"Unknown phase {phase!r}.")
    return float((dual + single) * per_block[phase])


@dataclass(frozen=True)
class TimeModel:
    """``seconds = per_flop * FLOPs + per_row * rows``: a two-term model of one machine.

    Calibrated on two *direct* steps (the base grid and one larger grid), it predicts every other
    mode and size; the FLOP-only ratio is its ``per_row = 0`` special case.
    """

    per_flop: float
    per_row: float

    @classmethod
    def calibrate(cls, config, text_len: int, base: tuple[int, int], points) -> "TimeModel":
        """``points``: ``[(grid, seconds of a direct step), (grid, seconds)]`` at two grids."""
        (g1, t1), (g2, t2) = points
        f1, f2 = (step_flops(config, g, base, text_len, GLOBAL) for g in (g1, g2))
        r1, r2 = (step_rows(config, g, base, text_len, GLOBAL) for g in (g1, g2))
        det = f1 * r2 - f2 * r1
        if det == 0:
            raise ValueError("Calibrate on two different grids.")
        per_flop, per_row = (t1 * r2 - t2 * r1) / det, (f1 * t2 - f2 * t1) / det
        return cls(max(per_flop, 0.0), max(per_row, 0.0))

    def step(self, config, grid, base, text_len: int, phase: str) -> float:
        return (self.per_flop * step_flops(config, grid, base, text_len, phase)
                + self.per_row * step_rows(config, grid, base, text_len, phase))


def generation_flops(config, grid, base, text_len: int, mode: str, steps: int, strength: float = 0.6) -> float:
    """FLOPs of a whole generation of ``steps`` steps in a mode."""
    if mode in ("direct", "extrapolate", "scaled_pe", "patch_pe", "ntk", "time_aware", "dype"):
        return steps * step_flops(config, grid, base, text_len, GLOBAL)
    if mode == "patch_pe_local":
        return steps * step_flops(config, grid, base, text_len, LOCAL)
    if mode == "tiling":
        return steps * step_flops(config, grid, base, text_len, "tiling")
    if mode == "two_stage":
        second = two_stage_steps(steps, strength)
        return steps * step_flops(config, base, base, text_len, GLOBAL) + second * step_flops(
            config, grid, base, text_len, GLOBAL)
    if mode.startswith("resdit"):
        g, f, loc = phase_lengths(steps)
        return sum(k * step_flops(config, grid, base, text_len, p) for k, p in ((g, GLOBAL), (f, FUSED), (loc, LOCAL)))
    raise ValueError(f"No cost model for mode {mode!r}.")
