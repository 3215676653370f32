"""Turn ResDiT on and off on a pipeline or a bare transformer of any supported family (:mod:`resdit.families`).

``apply_resdit`` finds the model's family and lets it install ResDiT (FLUX and Chroma: one
:class:`~resdit.processors.ResDiTFluxAttnProcessor` per attention layer and a forward pre-hook that reads the
token grid from ``img_ids``, the text length from ``txt_ids`` and the step from the scheduler, and keeps the shared
:class:`ResDiTState` (plan + phase) current; SD3: whole-model branches). On a pipeline it also makes
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

import torch

from .config import ResDiTConfig, ResDiTConfigError, check_size
from .families import family_of, supported_classes
from .geometry import window_starts
from .scheduler import base_shift, patch_shift, scheduler_position, scheduler_sigma, sigma_boundaries
from .state import STATE_ATTR, ResDiTState, grid_from_ids, patch_attr

__all__ = ["ResDiTState", "apply_resdit", "base_shift", "check_request", "enabled", "family", "get_state",
           "grid_from_ids", "install", "pixels_per_token", "remove_resdit", "set_step"]


def _supported_classes() -> dict[type, str]:
    """Every supported transformer (or ControlNet) class -> its family's name (:mod:`resdit.families`)."""
    return {cls: fam.name for cls, (fam, _) in supported_classes().items()}


def family(model) -> str:
    """The family name of a transformer or ControlNet (``"flux"``, ``"chroma"``, ``"sd3"``); TypeError otherwise."""
    return family_of(model)[0].name


def pixels_per_token(pipe) -> int:
    """Pixels per token side: the VAE factor x the family's patch (FLUX's 2x2 packing; SD3's ``patch_size``).

    FLUX.1, Chroma and SD3: 16; the toy model: 2.
    """
    transformer = _unwrap(getattr(pipe, "transformer", None))
    patch = 2
    if transformer is not None and type(transformer) in supported_classes():
        patch = family_of(transformer)[0].patch(dict(transformer.config))
    return int(getattr(pipe, "vae_scale_factor", 8)) * patch


def _split(target):
    """``(pipeline or None, transformer)``; a ``torch.compile``-d transformer gives the module it wraps (ResDiT's
    processors and hooks live there, and the compiled wrapper calls it)."""
    transformer = getattr(target, "transformer", None)
    if transformer is not None:
        return target, _unwrap(transformer)
    return None, _unwrap(target)


def _unwrap(module):
    return getattr(module, "_orig_mod", module)


def _check_supported(transformer) -> None:
    family_of(transformer)


def apply_resdit(target, config: ResDiTConfig, *, base_grid: tuple[int, int] | None = None, scheduler=None,
                 local_prompt: str | list[str] | None = None, local_text=None) -> ResDiTState:
    """Apply ResDiT to a pipeline (with ``.transformer``) or a bare FLUX transformer.

    Args:
        target: a ``FluxPipeline``-like pipeline or a ``FluxTransformer2DModel``.
        config: what to run; ``config.base_size`` is the training size in pixels.
        base_grid: the training grid in *tokens*; required for a bare transformer (where
            pixels per token are unknown), optional for a pipeline.
        scheduler: for a bare transformer, a scheduler whose ``step_index`` and
            ``timesteps`` give the step (pipelines use their own).
        local_prompt: the text of the local-only phase, one for all prompts or one per prompt (None: the call's
            prompt; :mod:`resdit.local_prompt`); FLUX.1 and the toy model, a schedule with a local-only phase.
            ``local_text``: its ``(states, pooled)`` (or states alone) instead (a bare transformer, or a prompt
            encoded your own way).

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
    if local_prompt is not None or local_text is not None:
        from .local_prompt import check_family, check_mode

        check_mode(config)
        check_family(family_of(transformer)[0])
        if local_prompt is not None and local_text is not None:
            raise ResDiTConfigError("Pass local_prompt or local_text, not both.")
        if local_prompt is not None and pipe is None:
            raise ResDiTConfigError("A bare transformer cannot encode local_prompt: pass local_text=(states, pooled).")

    controlnets = _controlnets(pipe)
    if controlnets and config.spec.tiled:
        raise ResDiTConfigError(
            f"Mode {config.mode!r} runs the transformer on tiles and cannot split a ControlNet's residuals; use "
            "resdit or scaled_pe with ControlNet."
        )
    state = install(transformer, config, base_grid, pipe, scheduler)
    states = [state]
    for net in controlnets:  # the control branch runs with the same positions, phases and windows
        states.append(install(net, config, base_grid, pipe, scheduler))
        state.on_undo(functools.partial(remove_resdit, net))
    if local_prompt is not None or local_text is not None:
        from .local_prompt import as_local_text, encode_local_prompt

        try:
            text = as_local_text(local_text if local_prompt is None else encode_local_prompt(pipe, local_prompt))
        except Exception:
            remove_resdit(target)
            raise
        for s in states:  # the transformer's and its ControlNets'
            s.local_text = text
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
            scheduler=None, observer: bool = False) -> ResDiTState:
    """Install processors and the state hook on a transformer, nothing on the pipeline.

    ``base_grid=None`` makes every call its own base; ``observer=True`` marks a state installed only to
    observe an untouched model (:func:`resdit.record`).
    """
    existing = getattr(transformer, STATE_ATTR, None)
    if existing is not None:
        if existing.observer:
            raise RuntimeError("resdit.record(...) is observing this model: apply ResDiT first, then enter record().")
        raise RuntimeError("ResDiT is already applied to this model; call resdit.remove_resdit(...) first.")
    fam, is_controlnet = family_of(transformer)
    fam.check_mode(config.mode)
    if observer and not fam.record_points:
        raise ResDiTConfigError(f"Attention recording does not support {fam.label} yet (its processors emit no "
                                "attention hook point).")
    state = ResDiTState(config, base_grid, transformer, pipeline=pipe, observer=observer)
    scheduler = pipe.scheduler if pipe is not None else scheduler
    if scheduler is not None:
        state.step_fn = lambda: scheduler_position(scheduler)
        state.sigma_fn = lambda: scheduler_sigma(scheduler)
        if config.phase_by == "sigma" and base_grid is not None:
            state.sigma_boundaries = sigma_boundaries(scheduler, base_grid, config, fam.base_mu)
    if (config.spec.patched or config.spec.tiled) and base_grid is None and fam.name == "sd3" and not observer:
        raise ResDiTConfigError("ResDiT for SD3 needs a base grid.")
    fam.install(state, is_controlnet)
    patch_attr(state, transformer, STATE_ATTR, state)
    return state


def _patch_pipeline(state: ResDiTState, pipe) -> None:
    config = state.config
    px = pixels_per_token(pipe)
    prepare_ids = getattr(pipe, "_prepare_latent_image_ids", None)
    if prepare_ids is not None:
        def float32_ids(batch_size, height, width, device, dtype):
            return prepare_ids(batch_size, height, width, device, torch.float32)

        patch_attr(state, pipe, "_prepare_latent_image_ids", float32_ids)

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

        patch_attr(state, pipe, "check_inputs", checked)

    patch_shift(state, pipe.scheduler, family_of(state.transformer)[0].base_mu)


def _vae_tiling(state: ResDiTState, pipe, height: int, width: int) -> None:
    """Turn on the VAE's own tiled decoding for large requests (``config.vae_tiling``); undone on removal."""
    vae = getattr(pipe, "vae", None)
    wanted = state.config.vae_tiling
    if wanted == "auto":
        wanted = height * width > state.config.vae_tiling_above
    if vae is None or not hasattr(vae, "enable_tiling") or bool(getattr(vae, "use_tiling", False)) == bool(wanted):
        return
    vae.enable_tiling() if wanted else vae.disable_tiling()
    state.on_undo(vae.disable_tiling if wanted else vae.enable_tiling)


def check_request(config: ResDiTConfig, base_grid: tuple[int, int], height: int, width: int, px: int) -> tuple[int, int]:
    """Validate a requested size in pixels before any work; return its token grid."""
    grid = check_size(height, width, px)
    spec = config.spec
    if spec.local_ids is not None and min(grid) < 2:
        raise ResDiTConfigError(f"{height}x{width} px is {grid} tokens: the local branch needs at least 2 per axis.")
    if base_grid is not None and spec.overlapping_windows:
        for n, window in zip(grid, base_grid):  # the windows' alignment and overlap must fit them (raises here)
            window_starts(n, min(window, n), config.align, config.overlap)
    return grid


def remove_resdit(target) -> None:
    """Undo :func:`apply_resdit`: the exact original processors, methods and hooks come back."""
    _, transformer = _split(target)
    state = getattr(transformer, STATE_ATTR, None)
    if state is None:
        raise RuntimeError("ResDiT is not applied to this model.")
    state.undo_all()


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
