"""Turn ResDiT on and off on a FLUX pipeline or a bare ``FluxTransformer2DModel``.

``apply_resdit`` installs one :class:`~resdit.processors.ResDiTFluxAttnProcessor` per
attention layer and one forward pre-hook on the transformer, which reads the token grid
from ``img_ids``, the text length from ``txt_ids`` and the step from the scheduler, and
keeps the shared :class:`ResDiTState` (plan + phase) current. On a pipeline it also makes
the position ids float32, checks sizes before any work, and optionally overrides the
scheduler shift. ``remove_resdit`` restores the exact original processor objects and
methods.

Example:
    >>> import resdit
    >>> cfg = resdit.ResDiTConfig(base_size=(1024, 1024), mode="resdit")   # doctest: +SKIP
    >>> with resdit.enabled(pipe, cfg):                                     # doctest: +SKIP
    ...     image = pipe(prompt, height=3072, width=3072, num_inference_steps=35).images[0]
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import REFERENCE_STEPS, ResDiTConfig, ResDiTConfigError, check_size
from .plan import Plan, build_plan, rope_variant
from .processors import ResDiTFluxAttnProcessor
from .schedule import GLOBAL, LOCAL, phase_at, phase_at_sigma, phase_lengths, reference_steps
from .tiling import tiled_forward

STATE_ATTR = "_resdit_state"
_MAX_PLANS = 4


def _supported_classes() -> dict[type, str]:
    """Per-model registry: transformer (or ControlNet) class -> family name."""
    from diffusers import (
        FluxControlNetModel,
        FluxTransformer2DModel,
        SD3ControlNetModel,
        SD3Transformer2DModel,
    )

    return {FluxTransformer2DModel: "flux", FluxControlNetModel: "flux", SD3Transformer2DModel: "sd3",
            SD3ControlNetModel: "sd3_controlnet"}


def family(model) -> str:
    """``"flux"``, ``"sd3"`` or ``"sd3_controlnet"``; TypeError for anything else."""
    _check_supported(model)
    return _supported_classes()[type(model)]


@dataclass
class ResDiTState:
    """What the processors of one model share.

    Attributes:
        config: the :class:`ResDiTConfig`.
        base_grid: training grid ``(h, w)`` in tokens (None: each call's own grid).
        plan / phase: current per-resolution plan and phase, set before every transformer call.
        step_fn: returns ``(step, num_steps)`` for the current call (from the scheduler).
        recorder: an attached :mod:`resdit.record` recorder, or None.
    """

    config: ResDiTConfig
    base_grid: tuple[int, int] | None
    transformer: torch.nn.Module
    pipeline: object | None = None
    step_fn: Callable[[], tuple[int, int]] | None = None
    sigma_fn: Callable[[], float | None] | None = None  # the scheduler's noise level of the current step
    sigma_boundaries: tuple[float, float] | None = None  # phase_by="sigma": see schedule.phase_at_sigma
    plan: Plan | None = None
    phase: str = GLOBAL
    step: int | None = None
    num_steps: int | None = None
    recorder: object | None = None
    call_context: str | None = None  # diffusers' cache_context name of the current call ("cond" / "uncond")
    pe_override: torch.Tensor | None = None  # SD3: the PE table the next PatchEmbed call returns
    _plans: dict = field(default_factory=dict)
    _undo: list = field(default_factory=list)

    def __repr__(self):
        return (f"ResDiTState(mode={self.config.mode!r}, base_grid={self.base_grid}, "
                f"grid={None if self.plan is None else self.plan.grid}, phase={self.phase!r}, step={self.step})")

    def prepare(self, img_ids: torch.Tensor, txt_ids: torch.Tensor, image_tokens: int, device,
                sigma: float | None = None) -> None:
        """Set ``phase`` and ``plan`` for one transformer call (``sigma``: its noise level)."""
        grid = grid_from_ids(img_ids, image_tokens)
        self.phase = self._phase(sigma)
        progress = None if self.step is None else self.step / max(self.num_steps, 1)
        variant = rope_variant(self.config, progress, sigma)
        t = self.transformer
        self.plan = self.cached(
            ("plan", grid, int(txt_ids.shape[-2]), str(device), variant),
            lambda: build_plan(self.config, t.pos_embed, grid, self.base_grid or grid, txt_ids.reshape(-1, 3),
                               t.config.attention_head_dim, device, variant))

    def cached(self, key, build: Callable[[], object]):
        """``build()`` once per key: per-resolution tensors shared by every layer and step (the oldest of
        more than ``_MAX_PLANS`` entries is dropped)."""
        value = self._plans.get(key)
        if value is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.pop(next(iter(self._plans)))
            value = self._plans[key] = build()
        return value

    def _phase(self, call_sigma: float | None = None) -> str:
        """The phase of the current call; ``call_sigma``: the noise level the call was given (used by
        ``phase_by="sigma"`` when no scheduler tells it)."""
        if self.step_fn is not None:
            self.step, self.num_steps = self.step_fn()
        schedule = self.config.spec.schedule
        if schedule == "global":
            return GLOBAL
        if schedule == "local":
            return LOCAL
        if self.config.phase_by == "sigma":
            sigma = self.sigma_fn() if self.sigma_fn is not None else call_sigma
            if sigma is None or self.sigma_boundaries is None:
                raise ResDiTConfigError(
                    "phase_by='sigma' needs the noise level of each call and the base size's schedule: apply ResDiT "
                    "to the pipeline (or pass scheduler= with base_grid to apply_resdit)."
                )
            return phase_at_sigma(sigma, self.sigma_boundaries)
        if self.step_fn is None:
            raise ResDiTConfigError(
                f"Mode {self.config.mode!r} follows the denoising steps, but this transformer has no scheduler. "
                "Pass scheduler= to apply_resdit, apply it to the pipeline, or call resdit.set_step(model, i, T)."
            )
        phase_lengths(self.num_steps, self.config.global_steps, self.config.local_steps)  # clear error first
        return phase_at(self.step, self.num_steps, self.config.global_steps, self.config.local_steps)


def grid_from_ids(img_ids: torch.Tensor, image_tokens: int) -> tuple[int, int]:
    """The ``(H, W)`` token grid of row-major FLUX ids ``[H*W, 3]``.

    Raises:
        ResDiTConfigError: if the ids are not an integer row-major grid of ``image_tokens``
            tokens (e.g. bf16 ids above 256, which collide).
    """
    ids = img_ids.reshape(-1, 3).float()
    rows, cols = ids[:, 1], ids[:, 2]
    H, W = int(rows.max().round()) + 1, int(cols.max().round()) + 1
    ok = H * W == image_tokens == ids.shape[0]
    if ok:
        r = torch.arange(H, device=ids.device).repeat_interleave(W)
        c = torch.arange(W, device=ids.device).repeat(H)
        ok = bool((rows == r).all() and (cols == c).all())
    if not ok:
        raise ResDiTConfigError(
            f"img_ids do not form an integer row-major grid of {image_tokens} tokens. ResDiT reads the token grid "
            "from them; build them in float32 (bf16 is exact only up to 256) or apply ResDiT to the pipeline, "
            "which does that for you."
        )
    return H, W


def _scheduler_position(scheduler) -> tuple[int, int]:
    begin = getattr(scheduler, "begin_index", None) or 0
    index = scheduler.step_index if scheduler.step_index is not None else begin
    return index - begin, len(scheduler.timesteps) - begin


def _scheduler_sigma(scheduler) -> float | None:
    sigmas, index = getattr(scheduler, "sigmas", None), getattr(scheduler, "step_index", None)
    if sigmas is None:
        return None
    if index is None:
        index = getattr(scheduler, "begin_index", None) or 0
    return float(sigmas[index])


def sigma_boundaries(scheduler, base_grid: tuple[int, int], config: ResDiTConfig) -> tuple[float, float]:
    """Noise levels of the first fused and the first local step of the paper's 35 steps (10 and 20 by default)
    on the base size's schedule: a fresh scheduler of the same config, FLUX's sigmas ``linspace(1, 1/35, 35)``,
    shifted with the base size's ``mu`` where the scheduler shifts by resolution."""
    fresh = type(scheduler).from_config(scheduler.config)
    kwargs = {}
    if getattr(fresh.config, "use_dynamic_shifting", False):
        kwargs["mu"] = base_shift(fresh, base_grid)
    fresh.set_timesteps(sigmas=np.linspace(1.0, 1 / REFERENCE_STEPS, REFERENCE_STEPS), **kwargs)
    first_fused, first_local = reference_steps(config.global_steps, config.local_steps)
    sigmas = fresh.sigmas
    return float(sigmas[first_fused]), float(sigmas[first_local])


def pixels_per_token(pipe) -> int:
    """Pixels per token side: the VAE factor x the patch (FLUX's 2x2 packing; SD3's ``patch_size``).

    FLUX.1 and SD3: 16; the toy model: 2.
    """
    transformer = getattr(pipe, "transformer", None)
    patch = 2
    if transformer is not None and _supported_classes().get(type(transformer)) == "sd3":
        patch = int(transformer.config.patch_size)
    return int(getattr(pipe, "vae_scale_factor", 8)) * patch


def _split(target):
    """``(pipeline or None, transformer)``."""
    transformer = getattr(target, "transformer", None)
    if transformer is not None:
        return target, transformer
    return None, target


def _check_supported(transformer) -> None:
    supported = _supported_classes()
    if type(transformer) not in supported:
        names = ", ".join(c.__name__ for c in supported)
        raise TypeError(
            f"ResDiT does not support {type(transformer).__name__}; supported models: {names}. "
            "Pass a FLUX or SD3 pipeline (any pipeline with such a .transformer) or the transformer itself."
        )


def _set_instance_attr(state: ResDiTState, obj, name: str, value) -> None:
    """Shadow ``obj.name`` on the instance; remember how to undo it exactly."""
    had = name in vars(obj)
    old = vars(obj).get(name)
    setattr(obj, name, value)
    state._undo.append(lambda: setattr(obj, name, old) if had else delattr(obj, name))


def apply_resdit(target, config: ResDiTConfig, *, base_grid: tuple[int, int] | None = None, scheduler=None) -> ResDiTState:
    """Apply ResDiT to a pipeline (with ``.transformer``) or a bare FLUX transformer.

    Args:
        target: a ``FluxPipeline``-like pipeline or a ``FluxTransformer2DModel``.
        config: what to run; ``config.base_size`` is the training size in pixels.
        base_grid: the training grid in *tokens*; required for a bare transformer (where
            pixels per token are unknown), optional for a pipeline.
        scheduler: for a bare transformer, a scheduler whose ``step_index`` and
            ``timesteps`` give the step (pipelines use their own).

    Returns:
        The shared :class:`ResDiTState` (useful in notebooks: its ``plan`` holds the grids).

    Raises:
        TypeError: unsupported transformer class.
        RuntimeError: ResDiT already applied to this model.
        ResDiTConfigError: base size missing or not divisible by the patch size.
    """
    pipe, transformer = _split(target)
    _check_supported(transformer)
    if config.spec.two_pass:
        raise ResDiTConfigError(
            f"Mode {config.mode!r} runs two pipeline passes; call resdit.generate(pipe, prompt, cfg, ...) instead."
        )
    if base_grid is None:
        if config.base_size is None:
            raise ResDiTConfigError("Set ResDiTConfig(base_size=(height, width)) in pixels, or pass base_grid in tokens.")
        if pipe is None:
            raise ResDiTConfigError(
                "A bare transformer does not know its pixels per token: pass base_grid=(rows, cols) in tokens "
                "(e.g. (64, 64) for FLUX.1 at 1024x1024)."
            )
        px = pixels_per_token(pipe)
        if config.base_size[0] % px or config.base_size[1] % px:
            raise ResDiTConfigError(f"base_size={config.base_size} is not divisible by {px} pixels per token.")
        base_grid = (config.base_size[0] // px, config.base_size[1] // px)
    base_grid = (int(base_grid[0]), int(base_grid[1]))

    controlnets = _controlnets(pipe)
    if controlnets and config.spec.tiled:
        raise ResDiTConfigError(
            f"Mode {config.mode!r} runs the transformer on tiles and cannot split a ControlNet's residuals; use "
            "resdit or scaled_pe with ControlNet."
        )
    state = install(transformer, config, base_grid, pipe, scheduler)
    for net in controlnets:  # the control branch runs with the same positions, phases and windows
        install(net, config, base_grid, pipe, scheduler)
        state._undo.append(functools.partial(remove_resdit, net))
    if pipe is not None:
        _patch_pipeline(state, pipe)
    return state


def _controlnets(pipe) -> list:
    """The ControlNet models of a ControlNet pipeline (several for a multi-ControlNet), else []."""
    net = getattr(pipe, "controlnet", None)
    if net is None:
        return []
    nets = list(getattr(net, "nets", [net]))
    for n in nets:
        _check_supported(n)
    return nets


def install(transformer, config: ResDiTConfig, base_grid: tuple[int, int] | None, pipe=None,
            scheduler=None) -> ResDiTState:
    """Install processors and the state hook on a transformer, nothing on the pipeline.

    ``base_grid=None`` makes every call its own base (used to observe an untouched model).
    """
    existing = getattr(transformer, STATE_ATTR, None)
    if existing is not None:
        if existing.config.extra.get("observer"):
            raise RuntimeError("resdit.record(...) is observing this model: apply ResDiT first, then enter record().")
        raise RuntimeError("ResDiT is already applied to this model; call resdit.remove_resdit(...) first.")
    kind = family(transformer)
    state = ResDiTState(config, base_grid, transformer, pipeline=pipe)
    scheduler = pipe.scheduler if pipe is not None else scheduler
    if scheduler is not None:
        state.step_fn = lambda: _scheduler_position(scheduler)
        state.sigma_fn = lambda: _scheduler_sigma(scheduler)
        if config.phase_by == "sigma" and base_grid is not None:
            state.sigma_boundaries = sigma_boundaries(scheduler, base_grid, config)

    if kind != "flux":
        from .sd3 import install_sd3, install_sd3_controlnet

        if config.extra.get("observer"):
            raise ResDiTConfigError("Attention recording supports FLUX-family models only (SD3 has no ResDiT processor).")
        if (config.spec.patched or config.spec.tiled) and base_grid is None:
            raise ResDiTConfigError("ResDiT for SD3 needs a base grid.")
        (install_sd3 if kind == "sd3" else install_sd3_controlnet)(state)
    elif config.spec.patched:
        _track_call_context(state, transformer)
        originals = dict(transformer.attn_processors)
        procs = {k: ResDiTFluxAttnProcessor(state, k.rsplit(".processor", 1)[0]) for k in originals}
        transformer.set_attn_processor(procs)
        state._undo.append(lambda: transformer.set_attn_processor(dict(originals)))

        def pre_forward(module, args, kwargs):
            hidden = kwargs.get("hidden_states", args[0] if args else None)
            timestep = kwargs.get("timestep")
            sigma = None if timestep is None else float(timestep.reshape(-1)[0])  # FLUX passes t / 1000
            state.prepare(kwargs["img_ids"], kwargs["txt_ids"], hidden.shape[1], hidden.device, sigma)
            if state.recorder is not None:
                state.recorder.on_call(state)
            return args, kwargs

        handle = transformer.register_forward_pre_hook(pre_forward, with_kwargs=True)
        state._undo.append(handle.remove)
    elif config.spec.tiled:
        if base_grid is None:
            raise ResDiTConfigError("Tiling needs a base grid.")
        _set_instance_attr(state, transformer, "forward", tiled_forward(state, transformer.forward))
    _set_instance_attr(state, transformer, STATE_ATTR, state)
    return state


def _track_call_context(state: ResDiTState, transformer) -> None:
    """Keep ``state.call_context`` at the name of the ``transformer.cache_context(name)`` block the pipeline
    runs the current call in (FluxPipeline: ``"cond"``, and ``"uncond"`` under true CFG); None outside one."""
    original = getattr(transformer, "cache_context", None)
    if original is None:
        return

    @contextlib.contextmanager
    def cache_context(name, *args, **kwargs):
        previous, state.call_context = state.call_context, name
        try:
            with original(name, *args, **kwargs):
                yield
        finally:
            state.call_context = previous

    _set_instance_attr(state, transformer, "cache_context", cache_context)


def _patch_pipeline(state: ResDiTState, pipe) -> None:
    config = state.config
    px = pixels_per_token(pipe)
    prepare_ids = getattr(pipe, "_prepare_latent_image_ids", None)
    if prepare_ids is not None:
        def float32_ids(batch_size, height, width, device, dtype):
            return prepare_ids(batch_size, height, width, device, torch.float32)

        _set_instance_attr(state, pipe, "_prepare_latent_image_ids", float32_ids)

    check_inputs = getattr(pipe, "check_inputs", None)
    if check_inputs is not None:
        signature = inspect.signature(check_inputs)

        def checked(*args, **kwargs):
            bound = signature.bind_partial(*args, **kwargs).arguments
            if bound.get("height") is not None and bound.get("width") is not None:
                height, width = int(bound["height"]), int(bound["width"])
                check_request(config, state.base_grid, height, width, px)
                _vae_tiling(state, pipe, height, width)
            return check_inputs(*args, **kwargs)

        _set_instance_attr(state, pipe, "check_inputs", checked)

    _patch_shift(state, pipe.scheduler)


def _patch_shift(state: ResDiTState, scheduler) -> None:
    """The scheduler shift of ``config.shift``, computed in a form that cannot overflow at any size.

    A scheduler with a static shift (SD3.5's) has no size-dependent shift to replace.
    """
    if not getattr(scheduler.config, "use_dynamic_shifting", False):
        return
    exponential = getattr(scheduler, "_time_shift_exponential", None)
    if exponential is not None:
        def safe_exponential(mu, sigma, t):
            try:
                return exponential(mu, sigma, t)
            except OverflowError:  # exp(mu) / (exp(mu) + x) = 1 / (1 + exp(-mu) x), finite for any mu
                return 1.0 / (1.0 + math.exp(-mu) * (1 / t - 1) ** sigma)

        _set_instance_attr(state, scheduler, "_time_shift_exponential", safe_exponential)
    shift = state.config.shift
    if shift == "pipeline":
        return
    set_timesteps = scheduler.set_timesteps
    mu = base_shift(scheduler, state.base_grid) if shift == "base" else float(shift)

    @functools.wraps(set_timesteps)  # pipelines inspect its signature
    def shifted(*args, **kwargs):
        kwargs["mu"] = mu
        return set_timesteps(*args, **kwargs)

    _set_instance_attr(state, scheduler, "set_timesteps", shifted)


def _vae_tiling(state: ResDiTState, pipe, height: int, width: int) -> None:
    """Turn on the VAE's own tiled decoding for large requests (``config.vae_tiling``); undone on removal."""
    vae = getattr(pipe, "vae", None)
    wanted = state.config.vae_tiling
    if wanted == "auto":
        wanted = height * width > state.config.vae_tiling_above
    if vae is None or not hasattr(vae, "enable_tiling") or bool(getattr(vae, "use_tiling", False)) == bool(wanted):
        return
    vae.enable_tiling() if wanted else vae.disable_tiling()
    state._undo.append(vae.disable_tiling if wanted else vae.enable_tiling)


def base_shift(scheduler, base_grid: tuple[int, int]) -> float:
    """The ``mu`` FLUX pipelines compute for the base grid's token count (FLUX.1 at 1024^2: 1.15)."""
    c = scheduler.config
    slope = (c.max_shift - c.base_shift) / (c.max_image_seq_len - c.base_image_seq_len)
    return c.base_shift + slope * (base_grid[0] * base_grid[1] - c.base_image_seq_len)


def check_request(config: ResDiTConfig, base_grid: tuple[int, int], height: int, width: int, px: int) -> tuple[int, int]:
    """Validate a requested size in pixels before any work; return its token grid."""
    grid = check_size(height, width, px)
    if config.spec.local_ids is not None and min(grid) < 2:
        raise ResDiTConfigError(f"{height}x{width} px is {grid} tokens: the local branch needs at least 2 per axis.")
    return grid


def remove_resdit(target) -> None:
    """Undo :func:`apply_resdit`: the exact original processors, methods and hooks come back."""
    _, transformer = _split(target)
    state = getattr(transformer, STATE_ATTR, None)
    if state is None:
        raise RuntimeError("ResDiT is not applied to this model.")
    for undo in reversed(state._undo):
        undo()
    state._undo.clear()


def get_state(target) -> ResDiTState | None:
    """The :class:`ResDiTState` of a model with ResDiT applied, else None."""
    return getattr(_split(target)[1], STATE_ATTR, None)


def set_step(target, step: int, num_steps: int) -> None:
    """For a bare transformer without scheduler: the step the next calls belong to."""
    state = get_state(target)
    if state is None:
        raise RuntimeError("ResDiT is not applied to this model.")
    state.step_fn = lambda: (step, num_steps)


@contextlib.contextmanager
def enabled(target, config: ResDiTConfig, **kwargs):
    """``with resdit.enabled(pipe, cfg): ...`` applies ResDiT and always removes it."""
    state = apply_resdit(target, config, **kwargs)
    try:
        yield state
    finally:
        remove_resdit(target)
