"""A prompt for the local-only phase (``local_prompt``): the last steps, where only the windows run, denoise under
text that describes what a window holds, while the global-only and fused phases keep the call's prompt.

Under PIPE each window is a canvas of the base size, and it reads the whole prompt, composition words included: a
window that holds part of an object several windows wide is told where the object stands in the *image*. On the toy
model that costs texture in the last steps, and a short local-only phase under the prompt without its place words
(its pooled vector included) gives much of it back, where the same steps under the call's prompt do not
(docs/decisions.md, "A prompt for the local-only phase"; ``scripts/local_prompt_probes.py``).

So the local prompt acts where no global branch runs, and a schedule without a local-only phase refuses it (set
``local_steps``). In that phase the call's text states and its pooled vector (FLUX's CLIP ``pooled_projections``) are
the local prompt's; under true CFG the unconditional call keeps its own text.

Example:
    >>> cfg = resdit.ResDiTConfig(base_size=(32, 32), mode="resdit", local_steps=3)          # doctest: +SKIP
    >>> with resdit.enabled(pipe, cfg, local_prompt="a red striped circle"):                 # doctest: +SKIP
    ...     image = pipe("a red striped circle at top left", height=128, width=128, num_inference_steps=20).images[0]
"""

from __future__ import annotations

import torch

from .config import ResDiTConfigError
from .schedule import LOCAL

#: families whose transformer calls carry the text as ``encoder_hidden_states`` / ``pooled_projections``
FAMILIES = ("flux",)


def has_local_branch(config) -> bool:
    """Whether ``config``'s mode runs windows in one transformer call (not tiling, not two passes)."""
    spec = config.spec
    return bool(spec.patched and not spec.tiled and spec.local_ids is not None and spec.schedule != "global"
                and not spec.two_pass)


def check_mode(config) -> None:
    """A local prompt needs a local-only phase: a phased mode with ``local_steps`` > 0 (or a local fraction), or a
    local-only mode; not tiling, not two passes."""
    spec = config.spec
    if not has_local_branch(config):
        raise ResDiTConfigError(
            f"local_prompt is the text of the local-only phase; mode {config.mode!r} has no local branch. Use it with "
            "resdit, resdit_fast, resdit_paper or another mode with a local branch."
        )
    local = config.local_steps if config.local_steps is not None else config.local_fraction
    if spec.schedule == "phased" and not local:
        raise ResDiTConfigError(
            f"local_prompt acts in the local-only phase, and mode {config.mode!r} fuses to the last step: give it one, "
            "e.g. ResDiTConfig(..., local_steps=3) of 20 steps (docs/decisions.md, 'A prompt for the local-only "
            "phase')."
        )


def encode_local_prompt(pipe, prompt: str | list[str], max_sequence_length: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """``(states [B, T, dim], pooled [B, dim])`` of ``prompt`` as ``pipe`` encodes its prompt (toy: its text encoder;
    FLUX.1: T5 padded to ``max_sequence_length`` and CLIP's pooled vector)."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if hasattr(pipe, "card"):  # the toy pipeline
        with torch.no_grad():
            return pipe.text_encoder.encode(prompts)
    encode = getattr(pipe, "encode_prompt", None)
    if encode is None:
        raise ResDiTConfigError(f"{type(pipe).__name__} has no encode_prompt: pass local_text=(states, pooled).")
    with torch.no_grad():
        states, pooled, _ = encode(prompt=prompts, prompt_2=None, device=pipe._execution_device,
                                   max_sequence_length=max_sequence_length)
    return states, pooled


def _batched(x: torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    if x.shape[0] != batch:
        if batch % x.shape[0]:
            raise ResDiTConfigError(f"local_prompt: {x.shape[0]} local prompts for a batch of {batch}; give one "
                                    "per prompt, or one for all.")
        x = x.repeat_interleave(batch // x.shape[0], dim=0)  # diffusers' num_images_per_prompt order
    return x.to(device=like.device, dtype=like.dtype)


def call_inputs(state, kwargs: dict) -> dict:
    """This call's keyword arguments, with the local prompt's text and pooled vector in the local-only phase.

    Not at or below the base size: there the one window is the whole image, whose prompt says where things stand
    (ResDiT is the identity there, with a local prompt too)."""
    if state.local_text is None or state.phase != LOCAL or state.call_context == "uncond":
        return kwargs
    plan = state.plan
    if plan is not None and all(g <= b for g, b in zip(plan.grid, plan.base)):
        return kwargs
    states, pooled = state.local_text
    text = kwargs.get("encoder_hidden_states")
    if text is None:
        raise ResDiTConfigError("local_prompt: this call passes no encoder_hidden_states to replace.")
    if states.shape[-1] != text.shape[-1]:
        raise ResDiTConfigError(f"local_prompt: its encoder states have {states.shape[-1]} features a token, the "
                                f"call's prompt {text.shape[-1]}. Encode it with the pipeline's own text encoder.")
    kwargs = dict(kwargs)
    kwargs["encoder_hidden_states"] = _batched(states, text.shape[0], text)
    if states.shape[1] != text.shape[1]:  # FLUX.1's text ids are zeros: one row per text token
        txt = kwargs["txt_ids"]
        kwargs["txt_ids"] = txt.new_zeros(*txt.shape[:-2], states.shape[1], txt.shape[-1])
    if pooled is not None and kwargs.get("pooled_projections") is not None:
        kwargs["pooled_projections"] = _batched(pooled, text.shape[0], kwargs["pooled_projections"])
    return kwargs


def as_local_text(local_text) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(states, pooled)`` from encoder states or such a pair."""
    if isinstance(local_text, torch.Tensor):
        return local_text, None
    states, pooled = local_text
    return states, pooled


def check_family(family) -> None:
    """Refuse a family (:class:`~resdit.families.Family`) whose calls the local prompt cannot enter (before any
    encoding)."""
    if family.name not in FAMILIES:
        raise ResDiTConfigError(f"local_prompt is supported on FLUX.1 (and the toy model), not yet on {family.label}.")
