"""Z-Image (``ZImageTransformer2DModel``, Z-Image and Z-Image-Turbo): one stream of ``[image, caption]`` tokens
after refiner layers that attend within the image (``noise_refiner``) or within the caption (``context_refiner``);
complex RoPE with theta 256 over integer ids ``(t, row, col)`` looked up in tables, the caption at ``t = 1..L``
and the image at ``t = L + 1``, rows and columns from 0; sequences padded to multiples of 32 with pad tokens.

ResDiT runs the branches on the image grid of the image-only and the joint layers and leaves the caption refiner
stock. Every other token (the caption, the pad tokens) is rotated by the model's own table, per sample, and enters
the branches as text; the image tokens' ``t`` rotation (the same for the whole grid) is applied the model's way
before the branches give rows and columns their own positions (:class:`ZImagePositions`: fractional positions need
the formula, not the lookup). Omni mode (several images, SigLIP features) and tiling are refused. The ControlNet
(``ZImageControlNetModel``) gets the processors on its own layers and shares the transformer's image refiner.
"""

from __future__ import annotations

from .base import Family, register


class ZImagePositions:
    """Rotary tables of Z-Image's formula (theta and axes from its ``RopeEmbedder``) for resdit's FLUX-layout ids,
    as real ``(cos, sin)``: the text rows and the image's ``t`` axis are the identity (the processor rotated them
    with the model's own table), rows and columns at the branch's positions."""

    def __init__(self, embedder):
        self.embedder = embedder

    def table(self, txt, image_ids, frame, variant=None, grid=None, base=None):
        import torch

        from ..positions import dynamic_ntk_frequencies, ntk_frequencies, scale_factors

        kind, param = (variant or ("", "base", 0.0))[1:]
        axes, theta = list(self.embedder.axes_dims), self.embedder.theta
        scales = (1.0, *scale_factors(grid, base)) if kind != "base" else (1.0, 1.0, 1.0)
        pos = torch.cat([torch.zeros(txt.shape[0], 3, device=image_ids.device), image_ids.float()]).double().cpu()
        pos[:, 0] = 0
        cos, sin = [], []
        for a, dim in enumerate(axes):
            f = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
            if kind == "ntk" and a > 0:
                f = ntk_frequencies(dim, theta, scales[a], param)
            elif kind == "dynamic" and a > 0:
                f = dynamic_ntk_frequencies(dim, theta, 1 + (scales[a] - 1) * param)
            angles = torch.outer(pos[:, a], f).float()
            freqs = torch.polar(torch.ones_like(angles), angles)
            cos.append(freqs.real.repeat_interleave(2, dim=1))
            sin.append(freqs.imag.repeat_interleave(2, dim=1))
        return torch.cat(cos, -1).to(image_ids.device), torch.cat(sin, -1).to(image_ids.device)


def _call_inputs(module, args, kwargs) -> dict:
    import torch

    from ..positions import extrapolated_ids

    x = kwargs.get("x", args[0] if args else None)
    if isinstance(x[0], list) or kwargs.get("siglip_feats") is not None:
        raise NotImplementedError("Z-Image's omni mode (several images, SigLIP features) does not combine with "
                                  "ResDiT; generate a single image.")
    p = int(kwargs.get("patch_size", 2))
    c, f, h, w = x[0].shape
    if f != 1:
        raise NotImplementedError("ResDiT generates images: one frame.")
    grid = (h // p, w // p)
    t = kwargs.get("t", args[1] if len(args) > 1 else None)
    sigma = None if t is None else 1.0 - float(t.reshape(-1)[0])  # Z-Image's t runs from 0 (noise) to 1
    return dict(img_ids=extrapolated_ids(grid).to(x[0].device), txt_ids=torch.zeros(0, 3),
                image_tokens=grid[0] * grid[1], device=x[0].device, sigma=sigma,
                positions=ZImagePositions(module.rope_embedder))


def _install(state, controlnet: bool = False) -> None:
    from .zimage_attention import install_zimage

    if state.config.spec.patched:
        install_zimage(state, _call_inputs)


ZIMAGE = register(Family(
    name="zimage", label="Z-Image", transformers=("ZImageTransformer2DModel",), controlnets=("ZImageControlNetModel",),
    pipelines=("ZImage",),
    install=_install, takes=lambda spec: not spec.tiled, patch=lambda config: 2,
    why_not="whole-model tiling runs FLUX's id layout, and Z-Image builds its positions inside the transformer.",
    img2img="ZImageImg2ImgPipeline",
))
