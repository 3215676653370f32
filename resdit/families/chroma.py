"""Chroma (``ChromaTransformer2DModel``): FLUX's architecture without the pooled text projection, FLUX's RoPE and
``FluxAttention`` layers, and an attention mask over the text padding that the pipeline passes to every block.

The FLUX path runs it unchanged; the mask reaches the processor as ``[B, 1, S, S]`` (text validity outer product),
and the processor restricts it to each branch's sequence (:func:`resdit.processors.branch_mask`).
"""

from __future__ import annotations

from .base import Family, register
from .flux import install_flux

CHROMA = register(Family(
    name="chroma", label="Chroma", transformers=("ChromaTransformer2DModel",), pipelines=("Chroma",),
    install=install_flux, img2img="ChromaImg2ImgPipeline",
))
