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
               windows: str = "mop", pool=1, pool_all: bool = False, align: int = 1, overlap: int = 1) -> float:
    """FLOPs of one forward in a phase: ``"global"`` (= direct), ``"local"``, ``"fused"``, ``"tiling"``
    (``pool``: the global branch's block size, an int or ``(ph, pw)``; ``pool_all``: pooled in the global-only
    phase too; ``align``: the windows' start alignment; ``overlap``: their least overlap in tokens)."""
    lin, att, _ = step_parts(config, grid, base, text_len, phase, windows, pool, pool_all, align, overlap)
    return lin + att


def two_stage_steps(steps: int, strength: float) -> int:
    """Steps the second (target-size) pass of ``two_stage`` runs, counted as diffusers' img2img does."""
    return steps - int(max(steps - min(steps * strength, steps), 0))


def step_rows(config, grid: tuple[int, int], base: tuple[int, int], text_len: int, phase: str,
              windows: str = "mop") -> float:
    """Token rows one forward touches with element-wise work, summed over blocks (norms, modulation,
    activations, RoPE, the local branch's gathers and splices): ``T + N`` per block for the model's
    own tokens, plus ``n (T + L)`` folded rows per block for a local branch; tiling runs ``n`` whole
    tiles. FLOPs do not see this work; on CPUs it is a large share of a windowed step."""
    return step_parts(config, grid, base, text_len, phase, windows)[2]


def step_parts(config, grid: tuple[int, int], base: tuple[int, int], text_len: int, phase: str,
               windows: str = "mop", pool=1, pool_all: bool = False, align: int = 1,
               overlap: int = 1) -> tuple[float, float, float]:
    """``(linear FLOPs, attention FLOPs, element-wise token rows)`` of one forward in a phase. With a block size
    ``pool`` > 1 (int or ``(ph, pw)``) beyond the base size the fused phase's global branch (and with
    ``pool_all`` the global-only phase's) attends over ``ceil(H/ph) x ceil(W/pw)`` blocks (rows: the blocks, plus
    one pass over the tokens to pool and upsample)."""
    _, dual, single, *_ = _dims(config)
    n = grid[0] * grid[1]
    part = WindowPartition.build(grid, base, layout=windows, align=align, min_overlap=overlap)
    L = part.window[0] * part.window[1]
    own, folded = text_len + n, part.num_windows * (text_len + L)
    lin = linear_flops(config, n, text_len)
    glob = attention_flops(config, text_len + n)
    local = attention_flops(config, text_len + L, part.num_windows)
    ph, pw = (pool, pool) if isinstance(pool, int) else pool
    fused_global, fused_rows = glob, own
    global_only = (lin, glob, own)
    if (ph > 1 or pw > 1) and (grid[0] > base[0] or grid[1] > base[1]):
        blocks = -(-grid[0] // ph) * -(-grid[1] // pw)
        fused_global, fused_rows = attention_flops(config, text_len + blocks), text_len + blocks + n
        if pool_all:
            global_only = (lin, fused_global, own + fused_rows)
    parts = {GLOBAL: global_only, LOCAL: (lin, local, own + folded),
             FUSED: (lin, fused_global + local, own + fused_rows + folded),
             "tiling": (part.num_windows * linear_flops(config, L, text_len), local, folded)}
    if phase not in parts:
        raise ValueError(f"Unknown phase {phase!r}.")
    lin, att, rows = parts[phase]
    return lin, att, float((dual + single) * rows)


@dataclass(frozen=True)
class TimeModel:
    """``seconds = linear FLOPs / linear rate + attention FLOPs / attention rate + rows x per-row time``.

    The three rates are measured by micro-benchmarks of the model's own shapes (:meth:`measure`:
    one linear layer, one attention call, one block's element-wise work), never fitted to the
    ratios it predicts. FLOPs alone miss two things on CPUs: a ``d = 128`` matmul runs at about two
    thirds of the attention kernel's FLOP rate, and norms, activations, modulation and RoPE are
    memory-bound work proportional to tokens.
    """

    per_linear_flop: float
    per_attention_flop: float
    per_row: float

    @classmethod
    def measure(cls, config, device="cpu", rows: int = 4096, repeats: int = 5, dtype=None) -> "TimeModel":
        import time

        import torch
        import torch.nn.functional as F

        c = dict(config)
        heads, hd = c["num_attention_heads"], c["attention_head_dim"]
        d = heads * hd
        g = torch.Generator().manual_seed(0)
        dtype = dtype or torch.float32

        def randn(*shape):
            return torch.randn(*shape, generator=g).to(device, dtype)

        x, w, h = randn(rows, d), randn(d, 4 * d), randn(rows, 4 * d)
        seq = 1024
        q = randn(4, heads, seq, hd)
        scale, shift = randn(d), randn(d)
        cuda = torch.device(device).type == "cuda"

        def elementwise():  # one block's token-wise work: 2 norms + modulation, GELU on the MLP width,
            y = F.layer_norm(x, (d,)) * (1 + scale) + shift  # gated residuals, q/k RMS norms and RoPE
            F.gelu(h, approximate="tanh")
            z = F.layer_norm(y, (d,)) * (1 + scale) + shift
            r = x + z * scale
            qk = torch.cat([r, r], dim=-1).view(rows, -1, 2)
            return (qk * qk.pow(2).mean(-1, keepdim=True).rsqrt()).sum()

        def best(fn):
            fn()
            times = []
            for _ in range(repeats):
                if cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                fn()
                if cuda:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            return min(times)

        with torch.no_grad():
            t_lin = best(lambda: x @ w)
            t_att = best(lambda: F.scaled_dot_product_attention(q, q, q))
            t_el = best(elementwise)
        return cls(t_lin / (2 * rows * d * 4 * d), t_att / (4 * 4 * seq * seq * hd * heads), t_el / rows)

    def step(self, config, grid, base, text_len: int, phase: str, pool=1, pool_all: bool = False) -> float:
        lin, att, rows = step_parts(config, grid, base, text_len, phase, pool=pool, pool_all=pool_all)
        return self.per_linear_flop * lin + self.per_attention_flop * att + self.per_row * rows


def generation_flops(config, grid, base, text_len: int, mode, steps: int, strength: float = 0.6) -> float:
    """FLOPs of a whole generation of ``steps`` steps in a mode (a name, or a :class:`~resdit.ResDiTConfig`,
    whose own options count: the global branch's pooling and its phases), read from its
    :class:`~resdit.config.ModeSpec`: tiled modes run base-size tiles every step, two-pass modes a base-size pass
    (plus, for ``two_stage``, the re-noised steps at the target size), the others their schedule's phases."""
    from .config import MODES, ResDiTConfig
    from .plan import pool_factors

    if isinstance(mode, ResDiTConfig):
        rc = mode
    elif mode in MODES:
        rc = ResDiTConfig(mode=mode)
    else:
        raise ValueError(f"No cost model for mode {mode!r}; choose one of {sorted(MODES)}.")
    spec = rc.spec
    if spec.tiled:
        return steps * step_flops(config, grid, base, text_len, "tiling", spec.windows, align=rc.align,
                                   overlap=rc.overlap)
    if spec.two_pass is not None:
        first = steps * step_flops(config, base, base, text_len, GLOBAL)
        second = two_stage_steps(steps, strength) if spec.two_pass == "two_stage" else 0
        return first + second * step_flops(config, grid, base, text_len, GLOBAL)
    if spec.schedule == "phased":
        counts = zip(phase_lengths(steps, rc.global_steps, rc.local_steps, rc.local_fraction), (GLOBAL, FUSED, LOCAL))
    else:
        counts = [(steps, GLOBAL if spec.schedule == "global" else LOCAL)]
    pool = pool_factors(rc, grid, base)
    return sum(k * step_flops(config, grid, base, text_len, p, spec.windows, pool, rc.pooled_phases == "all",
                              rc.align, rc.overlap) for k, p in counts)


#: FLUX.1-dev's transformer config (19 dual + 38 single blocks, d = 3072): timing needs no weights.
FLUX_DEV_CONFIG = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                       num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                       guidance_embeds=True, axes_dims_rope=(16, 56, 56))


#: the modes of :func:`flux_dev_table`: label -> ResDiTConfig keyword arguments
TABLE_CASES = {"resdit": dict(mode="resdit"), "resdit+full_tokens": dict(mode="resdit", global_tokens="full"),
               "resdit_fast": dict(mode="resdit_fast"), "resdit_paper": dict(mode="resdit_paper"),
               "two_stage": dict(mode="two_stage"), "tiling": dict(mode="tiling")}


def flux_dev_table(sides=(2048, 3072, 4096, 8192), steps: int = 35, strength: float = 0.6) -> list[dict]:
    """FLOP ratios to direct of whole FLUX.1-dev generations (19 + 38 blocks, d = 3072, 512 text tokens, base
    1024^2 = 64x64 tokens, 16 px per token) for every case of :data:`TABLE_CASES`, per side in pixels."""
    from .config import ResDiTConfig

    rows = []
    base = (64, 64)
    for side in sides:
        grid = (side // 16, side // 16)
        direct = generation_flops(FLUX_DEV_CONFIG, grid, base, 512, "direct", steps)
        row = {"side": side, "tokens": grid[0] * grid[1], "direct_step_tflop": step_flops(
            FLUX_DEV_CONFIG, grid, base, 512, GLOBAL) / 1e12}
        for label, kwargs in TABLE_CASES.items():
            row[label] = generation_flops(FLUX_DEV_CONFIG, grid, base, 512, ResDiTConfig(**kwargs), steps,
                                          strength) / direct
        rows.append(row)
    return rows


def main(argv=None) -> int:
    import argparse

    from .io import atomic_write, dumps_strict
    from .provenance import provenance

    p = argparse.ArgumentParser(prog="python -m resdit.cost", description="FLUX.1-dev's FLOP ratios to direct")
    p.add_argument("--out", default=None, help="JSON file (default: print)")
    args = p.parse_args(argv)
    record = {"provenance": provenance(model="random:flux-dev-geometry", config={"steps": 35, "strength": 0.6}),
              "cases": TABLE_CASES, "rows": flux_dev_table()}
    text = dumps_strict(record, indent=1) + "\n"
    if args.out:
        with atomic_write(args.out) as f:
            f.write(text)
    for r in record["rows"]:
        print(f"{r['side']}^2: " + ", ".join(f"{k} {r[k]:.3f}" for k in TABLE_CASES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
