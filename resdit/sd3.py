"""ResDiT for SD3 / SD3.5 (``SD3Transformer2DModel``): absolute sin-cos PE, branches at the model level.

FLUX's positions live inside attention (RoPE), so its branches differ per attention layer.
SD3 adds one sin-cos table to the image tokens at the input and has no other positional
signal, so the branches cannot differ inside attention alone. As SPEC 1 decides:

* **global branch**: the whole transformer, with the PE table *resampled* to the scaled
  positions (PES: the target grid spans the base crop's coordinates), optionally with
  proportional attention (softmax scale ``sqrt(log N / log n) / sqrt(d)``);
* **local branch**: the whole transformer run on every base-size window of the latent (all
  windows as one batch), each with the base-size PE crop (PIPE);
* **fusion**: PSF of the two predicted *velocities*, window by window on the token grid,
  spliced with Gaussian weights (GWS). The phases follow the same schedule as FLUX.

The table is evaluated analytically on a coordinate grid recovered from the checkpoint's own
``pos_embed`` buffer (checkpoints need not use diffusers' spacing), so sizes beyond
``pos_embed_max_size`` work too. Where the requested positions are integer rows of the
table (every size with extrapolated positions, and the base size), the stored rows are
used as they are: at scale 1 the resampled table equals the stock crop exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import ResDiTConfigError, check_mode_for, modes_for
from .fusion import build_partition, merge
from .geometry import WindowPartition
from .plan import proportional_scale
from .schedule import GLOBAL, LOCAL, branches
from .spectral import radial_mask
from .state import patch_attr

#: modes whose meaning carries over to an additive absolute PE (``ModeSpec.sd3``)
SD3_MODES = tuple(modes_for("sd3"))


def check_sd3_mode(mode: str) -> None:
    check_mode_for("sd3", mode)


# ---------------------------------------------------------------------------------------------------------------
# The sin-cos table
# ---------------------------------------------------------------------------------------------------------------


def _omega(dim: int) -> torch.Tensor:
    k = dim // 4
    return 1.0 / 10000 ** (torch.arange(k, dtype=torch.float64) / k)


def sincos_table(dim: int, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """SD3's 2-D sin-cos PE ``[len(ys) * len(xs), dim]`` at column coordinates ``xs`` and row coordinates ``ys``.

    Layout as diffusers' ``get_2d_sincos_pos_embed``: ``[sin(x w) | cos(x w) | sin(y w) | cos(y w)]``,
    ``w_k = 10000^(-k / (dim / 4))``; row-major tokens.
    """
    w = _omega(dim)
    ax = torch.outer(xs.double(), w)
    ay = torch.outer(ys.double(), w)
    ex = torch.cat([ax.sin(), ax.cos()], dim=1)  # [w, dim/2]
    ey = torch.cat([ay.sin(), ay.cos()], dim=1)  # [h, dim/2]
    h, wd = ey.shape[0], ex.shape[0]
    return torch.cat([ex.unsqueeze(0).expand(h, wd, -1), ey.unsqueeze(1).expand(h, wd, -1)], dim=-1).reshape(h * wd, dim)


def _unwrap_coordinates(sin: torch.Tensor, cos: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """Coordinates from ``sin(x w_k), cos(x w_k)`` ``[n, K]``: the lowest frequency first, then refined upwards."""
    angle = torch.atan2(sin, cos)  # [n, K]
    x = angle[:, -1] / omega[-1]
    for k in range(omega.numel() - 2, -1, -1):
        turns = torch.round((x * omega[k] - angle[:, k]) / (2 * math.pi))
        x = (angle[:, k] + 2 * math.pi * turns) / omega[k]
    return x


@dataclass(frozen=True)
class SinCosGrid:
    """The affine coordinate map of a stored ``[M*M, D]`` table: coordinate = ``a * index + b`` per axis."""

    size: int
    dim: int
    ax: float
    bx: float
    ay: float
    by: float

    @classmethod
    def recover(cls, table: torch.Tensor, size: int, tolerance: float = 1e-3) -> SinCosGrid:
        """Read the grid back from the table (``atan2`` on the lowest frequency, unwrapped upwards).

        Raises:
            ResDiTConfigError: if the buffer is not a sin-cos table on a regular grid.
        """
        dim = table.shape[-1]
        if dim % 4:
            raise ResDiTConfigError(f"A sin-cos PE of width {dim} is not divisible by 4.")
        t = table.reshape(size, size, dim).double()
        k = dim // 4
        omega = _omega(dim)
        x = _unwrap_coordinates(t[0, :, :k], t[0, :, k:2 * k], omega)  # along the columns of row 0
        y = _unwrap_coordinates(t[:, 0, 2 * k:3 * k], t[:, 0, 3 * k:], omega)
        idx = torch.arange(size, dtype=torch.float64)
        fits = []
        for c in (x, y):
            a = ((idx - idx.mean()) * (c - c.mean())).sum() / ((idx - idx.mean()) ** 2).sum()
            fits += [float(a), float(c.mean() - a * idx.mean())]
        grid = cls(size, dim, *fits)
        err = (grid.table(idx, idx) - t.reshape(-1, dim)).abs().max().item()
        if not err < tolerance:
            raise ResDiTConfigError(
                f"The model's pos_embed buffer is not a 2-D sin-cos table on a regular grid (max error {err:.2g} "
                "after recovery); ResDiT for SD3 needs SD3's own PE."
            )
        return grid

    def table(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """The PE at fractional table indices (row-major ``[len(rows) * len(cols), D]``, float64)."""
        return sincos_table(self.dim, self.ax * cols.double() + self.bx, self.ay * rows.double() + self.by)


def table_indices(kind: str, n: int, base: int, size: int) -> torch.Tensor:
    """Fractional indices into a ``size``-long table axis for ``n`` tokens.

    ``"extrapolate"``: SD3's own centred crop, ``(size - n) // 2 + j`` (continued past the table's
    ends when ``n > size``); ``"scaled"``: the ``n`` tokens spread over the centred base crop's span,
    ``(size - base) // 2 + j * base / n`` (position interpolation, as FLUX's scaled ids ``j / s``).
    """
    j = torch.arange(n, dtype=torch.float64)
    if kind == "extrapolate":
        return (size - n) // 2 + j
    if kind == "scaled":
        return (size - base) // 2 + j * base / n
    raise ResDiTConfigError(f"Unknown SD3 position kind {kind!r}.")


def pos_embed_table(patch_embed, grid: tuple[int, int], base: tuple[int, int], kind: str,
                    recover=None) -> torch.Tensor:
    """The PE ``[1, h*w, D]`` for an ``(h, w)`` token grid: stored rows where indices are integer rows
    of the table, the recovered analytic table elsewhere (``recover()``: the buffer's
    :class:`SinCosGrid`, e.g. a cached one; default :func:`recover_grid`)."""
    size = patch_embed.pos_embed_max_size
    buffer = patch_embed.pos_embed
    rows, cols = (table_indices(kind, n, b, size) for n, b in zip(grid, base))
    integer = all(bool((i == i.round()).all() and i.min() >= 0 and i.max() < size) for i in (rows, cols))
    if integer:
        stored = buffer.reshape(size, size, -1)[rows.long()][:, cols.long()]
        return stored.reshape(1, grid[0] * grid[1], -1)
    sincos = recover() if recover is not None else recover_grid(patch_embed)
    return sincos.table(rows, cols).to(device=buffer.device, dtype=buffer.dtype).unsqueeze(0)


def recover_grid(patch_embed) -> SinCosGrid:
    """The :class:`SinCosGrid` of a ``PatchEmbed``'s stored table."""
    buffer = patch_embed.pos_embed
    return SinCosGrid.recover(buffer.detach().float().cpu().reshape(-1, buffer.shape[-1]), patch_embed.pos_embed_max_size)


# ---------------------------------------------------------------------------------------------------------------
# Tokens <-> latents
# ---------------------------------------------------------------------------------------------------------------


def to_tokens(x: torch.Tensor, p: int) -> torch.Tensor:
    """``[B, C, h*p, w*p]`` -> ``[B, h*w, p*p*C]`` (row-major tokens)."""
    b, c, H, W = x.shape
    return x.view(b, c, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1).reshape(b, (H // p) * (W // p), p * p * c
                                                                            ).contiguous()


def from_tokens(x: torch.Tensor, grid: tuple[int, int], p: int) -> torch.Tensor:
    """Inverse of :func:`to_tokens`."""
    b, _, ch = x.shape
    c = ch // (p * p)
    # contiguous: a channels-last view would send the patch convolution down another kernel (last-bit differences)
    return x.view(b, grid[0], grid[1], p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, grid[0] * p, grid[1] * p
                                                                                  ).contiguous()


# ---------------------------------------------------------------------------------------------------------------
# Plan and forward
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SD3Plan:
    """Per-resolution tensors of the SD3 branches (built once per size, shared by all steps)."""

    grid: tuple[int, int]
    base: tuple[int, int]
    partition: WindowPartition
    global_pe: torch.Tensor  # [1, h*w, D]
    window_pe: torch.Tensor | None  # [1, L, D] (one crop for every window) or [n, L, D] (per window)
    mask: torch.Tensor
    global_scale: float | None
    text_len: int = 0  # set per recorded layer call (the recorder's view: text first, then the image)

    @property
    def image_tokens(self) -> int:
        return self.grid[0] * self.grid[1]


def global_kind(spec) -> str:
    """Table positions of the global branch: SD3's own crop (``"extrapolate"``) or ``"scaled"`` (PES)."""
    return "extrapolate" if spec.global_ids == "extrapolate" else "scaled"


def build_sd3_plan(cfg, patch_embed, grid, base, head_dim: int, device, recover=None) -> SD3Plan:
    spec = cfg.spec
    partition = build_partition(cfg, grid, base)
    wh, ww = partition.window
    global_pe = pos_embed_table(patch_embed, grid, base, global_kind(spec), recover).to(device)
    window_pe = None
    if spec.local_ids == "window" or spec.tiled:
        window_pe = pos_embed_table(patch_embed, (wh, ww), base, "extrapolate").to(device)  # the stock crop
    elif spec.local_ids == "global":
        window_pe = global_pe[0][partition.index.to(device)]
    scale = (proportional_scale(grid[0] * grid[1], base[0] * base[1], head_dim)
             if cfg.uses_proportional_attention else None)
    return SD3Plan(grid, base, partition.to(device), global_pe, window_pe, radial_mask((wh, ww), cfg.cutoff).to(device),
                   scale)


class _SoftmaxScale(torch.overrides.TorchFunctionMode):
    """Gives every ``scaled_dot_product_attention`` call without an explicit scale this one.

    SD3's ``JointAttnProcessor2_0`` calls SDPA directly without a scale argument; this is how
    proportional attention reaches it without replacing processors.
    """

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and kwargs.get("scale") is None:
            kwargs = {**kwargs, "scale": self.scale}
        return func(*args, **kwargs)


@contextlib.contextmanager
def _pe(state, table):
    state.pe_override = table
    try:
        yield
    finally:
        state.pe_override = None


@contextlib.contextmanager
def _pass(state, which):
    """The branch pass running now, for the recording processors: ``("global",)`` or ``("local", first window,
    windows)``."""
    state.sd3_pass = which
    try:
        yield
    finally:
        state.sd3_pass = None


class _CaptureSDPA(torch.overrides.TorchFunctionMode):
    """Keeps the q, k, v of the ``scaled_dot_product_attention`` call made inside it (``[B, heads, S, D]``)."""

    def __init__(self):
        super().__init__()
        self.qkv = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            self.qkv = tuple(kwargs.get(n, a) for n, a in zip(("query", "key", "value"), args[:3]))
        return func(*args, **kwargs)


class SD3RecordingProcessor:
    """Wraps SD3's stock attention processor: returns exactly what it returns, and while the ``attention`` hook point
    has a listener, reports the q, k and v its attention ran with, in the recorder's layout (text first, then the
    image; ``[B, T + N, heads, D]``). A window pass is reported once all its windows have run (the windows are
    batched, possibly in chunks), with each window's own q and k: SD3's windows are whole-model passes."""

    def __init__(self, state, name: str, stock):
        self.state, self.name, self.stock = state, name, stock
        self._windows: list = []

    def __call__(self, attn, hidden_states, *args, **kwargs):
        state = self.state
        which = state.sd3_pass
        if which is None or not state.listening("attention"):
            return self.stock(attn, hidden_states, *args, **kwargs)
        capture = _CaptureSDPA()
        with capture:
            out = self.stock(attn, hidden_states, *args, **kwargs)
        n = hidden_states.shape[1]
        q, k, v = (self._text_first(x.transpose(1, 2), n) for x in capture.qkv)
        plan = dataclasses.replace(state.plan, text_len=q.shape[1] - n)
        if which[0] == "global":
            ran = {"global": dict(query=q, key=k, value=v, scale=plan.global_scale, bias=None, grid=plan.grid,
                                  factors=(1, 1))}
            state.emit("attention", self.name, q, k, plan, GLOBAL, ran)
            return out
        _, first, count = which
        b = q.shape[0] // count
        self._windows.append((first, q.unflatten(0, (b, count)), k.unflatten(0, (b, count))))
        if first + count == plan.partition.num_windows:  # the last chunk: every window has run
            chunks, self._windows = sorted(self._windows, key=lambda c: c[0]), []
            qw, kw = (torch.cat([c[i] for c in chunks], 1) for i in (1, 2))  # [B, windows, T + L, heads, D]
            ran = {"local": dict(windows=(qw, kw), partition=plan.partition, bias=None, rope=None)}
            state.emit("attention", self.name, None, None, plan, LOCAL, ran)
        return out

    @staticmethod
    def _text_first(x, n):
        return torch.cat([x[:, n:], x[:, :n]], 1)


def install_recording(state, transformer) -> None:
    """One :class:`SD3RecordingProcessor` around each stock attention processor (the originals come back on undo)."""
    originals = dict(transformer.attn_processors)
    transformer.set_attn_processor({k: SD3RecordingProcessor(state, k.rsplit(".processor", 1)[0], v)
                                    for k, v in originals.items()})
    state.on_undo(lambda: transformer.set_attn_processor(dict(originals)))


def install_pe_override(state, patch_embed) -> None:
    """Make ``patch_embed`` return ``state.pe_override`` while one is set (and the stock crop otherwise)."""
    stock = patch_embed.cropped_pos_embed

    def cropped_pos_embed(height, width):
        return stock(height, width) if state.pe_override is None else state.pe_override

    patch_attr(state, patch_embed, "cropped_pos_embed", cropped_pos_embed)


def sd3_prepare(state, grid: tuple[int, int], device) -> SD3Plan:
    """Phase and plan of one SD3 transformer call."""
    t = state.transformer
    return state.begin_call(("plan", grid, str(device)), lambda: build_sd3_plan(
        state.config, t.pos_embed, grid, state.base_grid or grid, t.config.attention_head_dim, device,
        lambda: _sincos(state, t.pos_embed)))


def _sincos(state, patch_embed) -> SinCosGrid:
    """The recovered table grid, once while ResDiT is applied (nothing is left on the model)."""
    return state.cached(("sincos", id(patch_embed)), lambda: recover_grid(patch_embed))


def sd3_forward(state, original_forward):
    """A replacement for ``SD3Transformer2DModel.forward`` (and ``SD3ControlNetModel.forward``'s
    position table) that runs the branches of the current phase and fuses their velocities."""
    from diffusers.models.modeling_outputs import Transformer2DModelOutput

    transformer = state.transformer
    p = transformer.config.patch_size

    def forward(hidden_states, encoder_hidden_states=None, pooled_projections=None, timestep=None,
                block_controlnet_hidden_states=None, joint_attention_kwargs=None, return_dict=True, skip_layers=None):
        H, W = hidden_states.shape[-2:]
        grid = (H // p, W // p)
        plan = sd3_prepare(state, grid, hidden_states.device)
        state.emit("call", state)
        spec = state.config.spec
        phase = LOCAL if spec.tiled else state.phase  # tiling: the base-size windows every step
        common = dict(joint_attention_kwargs=joint_attention_kwargs, return_dict=False, skip_layers=skip_layers)
        run_global, run_local = branches(phase)
        v_global = windows = None
        if run_global:
            scale = contextlib.nullcontext() if plan.global_scale is None else _SoftmaxScale(plan.global_scale)
            with _pe(state, plan.global_pe), scale, _pass(state, ("global",)):
                v_global = original_forward(hidden_states, encoder_hidden_states, pooled_projections, timestep,
                                            block_controlnet_hidden_states=block_controlnet_hidden_states, **common)[0]
        if not run_local:
            sample = v_global
        else:
            windows = _run_windows(state, original_forward, plan, hidden_states, encoder_hidden_states,
                                   pooled_projections, timestep, block_controlnet_hidden_states, common)
            g = None if v_global is None else to_tokens(v_global, p)
            tokens, _ = merge(phase, spec.fusion, plan.partition, plan.mask, g, windows)
            sample = from_tokens(tokens, grid, p)
        return Transformer2DModelOutput(sample=sample) if return_dict else (sample,)

    return forward


def _run_windows(state, original_forward, plan: SD3Plan, hidden_states, encoder_hidden_states, pooled_projections,
                 timestep, controlnet_residuals, common) -> torch.Tensor:
    """Velocities of every window ``[B, n, L, p*p*C]``: the transformer on all windows as one batch (chunked)."""
    from .tiling import tile_chunks

    p = state.transformer.config.patch_size
    part = plan.partition
    b = hidden_states.shape[0]
    L = part.index.shape[1]
    tokens = to_tokens(hidden_states, p)
    outs = []
    for lo, idx, rep in tile_chunks(state, part, b, encoder_hidden_states, hidden_states.device):
        c = idx.shape[0]
        tiles = from_tokens(tokens[:, idx].flatten(0, 1), part.window, p)
        residuals = None
        if controlnet_residuals is not None:
            residuals = [r[:, idx].flatten(0, 1) for r in controlnet_residuals]
        pe = plan.window_pe if plan.window_pe.shape[0] == 1 else plan.window_pe[lo:lo + c].repeat(b, 1, 1)
        with _pe(state, pe), _pass(state, ("local", lo, c)):
            out = original_forward(tiles, rep(encoder_hidden_states), rep(pooled_projections), rep(timestep),
                                   block_controlnet_hidden_states=residuals, **common)[0]
        outs.append(to_tokens(out, p).view(b, c, L, -1))
    return torch.cat(outs, dim=1)


def install_sd3(state) -> None:
    """Wrap the forward of an SD3 transformer (or SD3 ControlNet) for ``state.config``."""
    transformer = state.transformer
    check_sd3_mode(state.config.mode)
    if state.config.pool > 1:
        raise ResDiTConfigError("global_pool > 1 pools FLUX's global attention; SD3's global branch is the whole model "
                                "and has no pooled form here. Use global_pool=1 (mode resdit) for SD3.")
    if state.config.global_tokens == "base":  # asked for; mode resdit's own default stays full here
        raise ResDiTConfigError(
            "global_tokens='base' pools FLUX's global attention to the training token count. SD3's global branch is "
            "the whole model, so on the pooled grid it would be a base-size generation run on block means of the "
            "noisy latent, whose noise is p x smaller than its timestep says (docs/decisions.md); it is not "
            "available for SD3: leave global_tokens unset (SD3 runs every mode's global branch at full size).")
    if getattr(transformer, "pos_embed", None) is None or transformer.pos_embed.pos_embed_max_size is None:
        raise ResDiTConfigError(f"{type(transformer).__name__} has no cropped sin-cos PE (pos_embed_max_size).")
    if not (state.config.spec.patched or state.config.spec.tiled):
        return  # direct: the stock model, including its size limit
    install_pe_override(state, transformer.pos_embed)
    install_recording(state, transformer)
    patch_attr(state, transformer, "forward", sd3_forward(state, transformer.forward))


def install_sd3_controlnet(state) -> None:
    """An SD3 ControlNet runs once per step on the whole latent: it gets the global branch's table."""
    net = state.transformer
    check_sd3_mode(state.config.mode)
    if getattr(net, "pos_embed", None) is None or not (state.config.spec.patched or state.config.spec.tiled):
        return  # SD3.5-large ControlNets use the transformer's table; direct leaves the model as it is
    install_pe_override(state, net.pos_embed)
    stock = net.forward
    p = net.config.patch_size

    def forward(hidden_states, *args, **kwargs):  # (apply_resdit refuses tiling with a ControlNet)
        grid = (hidden_states.shape[-2] // p, hidden_states.shape[-1] // p)
        device = hidden_states.device
        table = state.cached(("table", grid, str(device)), lambda: pos_embed_table(
            net.pos_embed, grid, state.base_grid or grid, global_kind(state.config.spec),
            lambda: _sincos(state, net.pos_embed)).to(device))
        with _pe(state, table):
            return stock(hidden_states, *args, **kwargs)

    patch_attr(state, net, "forward", forward)
