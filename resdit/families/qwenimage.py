"""Qwen-Image (``QwenImageTransformer2DModel``): complex RoPE (theta 10000, axes frame/row/col) from tables
precomputed for integer positions, image rows and columns centred on 0 (``scale_rope``), and text positions that
start after the largest image index; a double-stream attention (``QwenDoubleStreamAttnProcessor2_0``) over
``[text, image]`` with a key mask over text padding. The transformer builds its positions from ``img_shapes``.

ResDiT gives each branch its own table (:class:`QwenPositions`): fractional scaled positions cannot be looked up in
an integer table, so they are computed the way the model computes its own; the text offset follows the grid each
branch's positions span (the base size's for the scaled global branch and the windows; the image's own where the
stock positions are extrapolated). Tiled modes (whole-model tiles) are not implemented for it and are refused.
"""

from __future__ import annotations

from .base import Family, register
from .flux import install_flux


class QwenPositions:
    """Qwen-Image's rotary tables for resdit's FLUX-layout ids ``(0, row, col)``, as real ``(cos, sin)`` pairs
    (Qwen's complex rotation of channel pairs ``(2i, 2i+1)`` is FLUX's interleaved real rotation)."""

    def __init__(self, pos_embed):
        self.pos_embed = pos_embed

    def table(self, txt, image_ids, frame, variant=None, grid=None, base=None):
        import torch

        from ..positions import dynamic_ntk_frequencies, ntk_frequencies, scale_factors

        fh, fw = frame
        offset = max(fh // 2, fw // 2)  # Qwen: text positions start after the largest (centred) image index
        T = txt.shape[0]
        text = (offset + torch.arange(T, dtype=torch.float32, device=image_ids.device))[:, None].expand(T, 3)
        image = torch.stack([image_ids[:, 0], image_ids[:, 1] - (fh - fh // 2), image_ids[:, 2] - (fw - fw // 2)], -1)
        pos = torch.cat([text, image.float()])
        kind, param = (variant or ("", "base", 0.0))[1:]
        axes, theta = list(self.pos_embed.axes_dim), self.pos_embed.theta
        scales = (1.0, *scale_factors(grid, base)) if kind != "base" else (1.0, 1.0, 1.0)
        cos, sin = [], []
        for a, dim in enumerate(axes):
            if kind == "base" or a == 0:
                freqs = self.pos_embed.rope_params(pos[:, a].cpu(), dim, theta)  # the model's own computation
            else:
                f = (ntk_frequencies(dim, theta, scales[a], param) if kind == "ntk" else
                     dynamic_ntk_frequencies(dim, theta, 1 + (scales[a] - 1) * param))
                angles = torch.outer(pos[:, a].cpu(), f.float())
                freqs = torch.polar(torch.ones_like(angles), angles)
            cos.append(freqs.real.repeat_interleave(2, dim=1))
            sin.append(freqs.imag.repeat_interleave(2, dim=1))
        return torch.cat(cos, -1).to(image_ids.device), torch.cat(sin, -1).to(image_ids.device)


def _call_inputs(module, args, kwargs) -> dict:
    import torch

    from ..positions import extrapolated_ids

    hidden, text = kwargs["hidden_states"], kwargs["encoder_hidden_states"]
    shapes = kwargs.get("img_shapes")
    shape = shapes[0] if isinstance(shapes, list) else shapes
    shape = shape if isinstance(shape, list) else [shape]
    if len(shape) != 1 or int(shape[0][0]) != 1:
        raise NotImplementedError("Qwen-Image with more than one image in the sequence (editing, layers) does not "
                                  "combine with ResDiT; generate a single image.")
    _, h, w = (int(x) for x in shape[0])
    timestep = kwargs.get("timestep")
    return dict(img_ids=extrapolated_ids((h, w)).to(hidden.device), txt_ids=torch.zeros(text.shape[1], 3),
                image_tokens=hidden.shape[1], device=hidden.device,
                sigma=None if timestep is None else float(timestep.reshape(-1)[0]),
                positions=QwenPositions(module.pos_embed))


def _install(state, controlnet: bool = False) -> None:
    from .qwenimage_attention import ResDiTQwenAttnProcessor

    install_flux(state, controlnet, processor=lambda state, name, stock: ResDiTQwenAttnProcessor(state, name),
                 call_inputs=_call_inputs)


QWEN_IMAGE = register(Family(
    name="qwenimage", label="Qwen-Image", transformers=("QwenImageTransformer2DModel",),
    controlnets=("QwenImageControlNetModel",),
    pipelines=("QwenImage",), install=_install, takes=lambda spec: not spec.tiled,
    why_not="whole-model tiling runs FLUX's id layout, and Qwen-Image builds its positions inside the transformer.",
    img2img="QwenImageImg2ImgPipeline", default_base=(1328, 1328),
))
