"""Model families as plug-ins.

A family says, in one small module, what ResDiT needs to know about a model kind: which diffusers classes it
covers, how many latent pixels one token spans, the training size, which modes it can take, and how to install
ResDiT's branches on it. Everything else (plans, phases, fusion, splice, tiling, hook points, undo) is the shared
core. :mod:`resdit.apply` dispatches through :data:`FAMILIES`; :mod:`resdit.loading` reads a model folder's family
from the same table.

Families:
    flux (FLUX.1 and its ControlNet), chroma, flux2 (FLUX.2 [dev] and [klein]), qwenimage (and its ControlNet),
    zimage, sd3 (SD3 / SD3.5 and their ControlNets).
"""

from __future__ import annotations

from .base import Family, by_name, family_of, pipeline_family, register, supported_classes
from . import chroma, flux, flux2, qwenimage, sd3, zimage  # noqa: F401  (each registers itself)

FAMILIES = {name: by_name(name) for name in ("flux", "chroma", "flux2", "qwenimage", "zimage", "sd3")}

__all__ = ["FAMILIES", "Family", "by_name", "family_of", "pipeline_family", "register", "supported_classes"]
