"""FLUX.1 (``FluxTransformer2DModel``, ``FluxControlNetModel``): RoPE over float ``(0, row, col)`` ids that the
pipeline passes as ``img_ids`` / ``txt_ids``; joint attention in ``FluxAttention`` with text first.

ResDiT installs one :class:`~resdit.processors.ResDiTFluxAttnProcessor` per attention layer and a forward pre-hook
that sets the call's phase and plan from the ids, the noise level and the scheduler's step. Chroma uses the same
path (:mod:`resdit.families.chroma`).
"""

from __future__ import annotations

import contextlib

from .base import Family, register

# The family table is read by the command line before torch loads: the generation path is imported when a
# family installs itself, not here.


def install_flux(state, controlnet: bool = False, processor=None, call_inputs=None) -> None:
    """Processors and the pre-hook for the phased and patched modes; the tile loop for tiled modes.

    ``processor(state, name, stock)``: the ResDiT processor that replaces a stock one (default: FLUX's, for
    every layer); ``call_inputs``: what the pre-hook reads from a call (default :func:`flux_call_inputs`)."""
    from ..config import ResDiTConfigError
    from ..state import patch_attr
    from ..tiling import tiled_forward

    transformer, config = state.transformer, state.config
    if config.spec.patched:
        install_processors(state, processor, call_inputs)
    elif config.spec.tiled:
        if state.base_grid is None:
            raise ResDiTConfigError("Tiling needs a base grid.")
        patch_attr(state, transformer, "forward", tiled_forward(state, transformer.forward))


def flux_call_inputs(module, args, kwargs) -> dict:
    """What one FLUX-like call tells :meth:`~resdit.state.ResDiTState.prepare`: its ids, image tokens, device and
    noise level (FLUX passes the timestep as t / 1000)."""
    hidden = kwargs.get("hidden_states", args[0] if args else None)
    timestep = kwargs.get("timestep")
    sigma = None if timestep is None else float(timestep.reshape(-1)[0])
    return dict(img_ids=kwargs["img_ids"], txt_ids=kwargs["txt_ids"], image_tokens=hidden.shape[1],
                device=hidden.device, sigma=sigma)


def install_processors(state, processor=None, call_inputs=None) -> None:
    """One ResDiT processor per attention layer (``processor(state, name, stock)``; default
    :class:`~resdit.processors.ResDiTFluxAttnProcessor`; the originals come back on undo) and the pre-hook that
    prepares each call from what ``call_inputs(module, args, kwargs)`` reads (default :func:`flux_call_inputs`)."""
    if processor is None:
        from ..processors import ResDiTFluxAttnProcessor

        def processor(state, name, stock):
            return ResDiTFluxAttnProcessor(state, name)
    transformer = state.transformer
    _track_call_context(state, transformer)
    originals = dict(transformer.attn_processors)
    procs = {k: processor(state, k.rsplit(".processor", 1)[0], v) for k, v in originals.items()}
    transformer.set_attn_processor(procs)
    state.on_undo(lambda: transformer.set_attn_processor(dict(originals)))

    prepare_each_call(state, call_inputs or flux_call_inputs)


def prepare_each_call(state, call_inputs) -> None:
    """The transformer's forward pre-hook: the call's phase and plan from what ``call_inputs(module, args, kwargs)``
    reads, the local prompt's text in the local-only phase (:mod:`resdit.local_prompt`), then the ``call`` hook point;
    removed on undo."""

    from ..local_prompt import call_inputs as local_text_inputs

    def pre_forward(module, args, kwargs):
        state.prepare(**call_inputs(module, args, kwargs))
        if state.local_text is not None:
            local = local_text_inputs(state, kwargs)
            if local is not kwargs:  # the local-only phase under the local prompt: its text length's plan
                kwargs = local
                state.prepare(**call_inputs(module, args, kwargs))
        state.emit("call", state)
        return args, kwargs

    handle = state.transformer.register_forward_pre_hook(pre_forward, with_kwargs=True)
    state.on_undo(handle.remove)


def _track_call_context(state, transformer) -> None:
    """Keep ``state.call_context`` at the name of the ``transformer.cache_context(name)`` block the pipeline
    runs the current call in (FluxPipeline: ``"cond"``, and ``"uncond"`` under true CFG); None outside one."""
    from ..state import patch_attr

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

    patch_attr(state, transformer, "cache_context", cache_context)


FLUX = register(Family(
    name="flux", label="FLUX.1", transformers=("FluxTransformer2DModel",), controlnets=("FluxControlNetModel",),
    pipelines=("Flux",), install=install_flux, img2img="FluxImg2ImgPipeline",
))
