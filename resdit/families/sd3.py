"""SD3 and SD3.5 (``SD3Transformer2DModel``, ``SD3ControlNetModel``): an absolute sin-cos table cropped from a
``pos_embed_max_size`` grid and added at the input; no RoPE. ResDiT's branches are whole-model passes on the
resampled table (:mod:`resdit.sd3`), so the modes that change RoPE inside attention are refused by name. Recording
reads each pass's attention through processors that wrap the stock ones (:class:`resdit.sd3.SD3RecordingProcessor`).
"""

from __future__ import annotations

from .base import Family, register


def _install(state, controlnet: bool = False) -> None:
    from ..sd3 import install_sd3, install_sd3_controlnet

    (install_sd3_controlnet if controlnet else install_sd3)(state)


def _base_size(pipe) -> tuple[int, int]:
    side = int(pipe.transformer.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
    return side, side


SD3 = register(Family(
    name="sd3", label="SD3", transformers=("SD3Transformer2DModel",), controlnets=("SD3ControlNetModel",),
    pipelines=("StableDiffusion3",), install=_install, patch=lambda config: int(config.get("patch_size", 2)),
    base_size=_base_size, takes=lambda spec: spec.sd3,
    record_points=("probs", "entropy", "distance"),  # no RoPE ids; its branches meet as velocities
    img2img="StableDiffusion3Img2ImgPipeline",
    why_not="it changes RoPE frequencies or per-patch indices inside global attention, and SD3's only position "
            "signal is a sin-cos table added at the input.",
))
