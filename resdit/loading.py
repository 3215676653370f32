"""Load a pipeline for resdit, and read what a model folder is before loading it.

* :func:`load_any_pipeline`: the shipped toy model, a toy weights folder, or a diffusers FLUX / SD3
  pipeline (folder or hub id).
* :func:`base_size_of`: the training size in pixels of a loaded pipeline.
* :func:`peek`: family, pixels per token and toy world of a model *without* loading weights (from
  its JSON files), so bad requests fail before the expensive part.

Example:
    >>> peek(None).family, peek(None).pixels_per_token
    ('flux', 2)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FLUX_BASE_SIZE = (1024, 1024)
_TOY_WEIGHTS = Path(__file__).parent / "toy" / "weights"
# model_index.json `_class_name` prefix -> family
_PIPELINE_FAMILIES = (("StableDiffusion3", "sd3"), ("Flux", "flux"))


class ModelLoadError(ValueError):
    """Weights missing, gated or unreachable, or a model resdit does not support."""


@dataclass(frozen=True)
class ModelInfo:
    """What a model is, read from its JSON files.

    Attributes:
        family: ``"flux"`` or ``"sd3"``; None where it cannot be told without loading (a hub id).
        pixels_per_token: image pixels per token side (toy: 2; FLUX.1, SD3: 16); None if unknown.
        world: the toy world of a toy model (``"v1"``, ``"v2"``), else None.
    """

    family: str | None
    pixels_per_token: int | None
    world: str | None = None

    @property
    def is_toy(self) -> bool:
        return self.world is not None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_toy_folder(model: str | Path | None) -> bool:
    return model is None or (Path(model) / "transformer.safetensors").exists()


def peek(model: str | Path | None) -> ModelInfo:
    """Family, pixels per token and toy world of ``model`` (None: the shipped toy model), without torch."""
    if is_toy_folder(model):
        card = _read_json(Path(model or _TOY_WEIGHTS) / "config.json") or {}
        return ModelInfo("flux", int(card.get("pixels_per_token", 2)), card.get("world", "v1"))
    root = Path(model)
    index = _read_json(root / "model_index.json")
    if index is None:
        return ModelInfo(None, None)  # a hub id or a folder we cannot read: decided after loading
    name = str(index.get("_class_name", ""))
    family = next((f for prefix, f in _PIPELINE_FAMILIES if name.startswith(prefix)), None)
    if family is None:
        raise ModelLoadError(f"{model!r} is a {name or 'pipeline of unknown class'}; resdit supports FLUX and SD3 "
                             "pipelines (FluxPipeline, StableDiffusion3Pipeline and their ControlNet variants).")
    vae = _read_json(root / "vae" / "config.json") or {}
    vae_factor = 2 ** (len(vae.get("block_out_channels", [0, 0, 0, 0])) - 1)
    patch = 2 if family == "flux" else int((_read_json(root / "transformer" / "config.json") or {}).get("patch_size", 2))
    return ModelInfo(family, vae_factor * patch)


def base_size_of(pipe, override=None) -> tuple[int, int]:
    """Training size in pixels: ``override``, the toy model's card, SD3's ``sample_size`` x the VAE
    factor (1024x1024 for SD3 and SD3.5), or FLUX.1's 1024x1024."""
    if override is not None:
        return tuple(int(x) for x in override)
    if hasattr(pipe, "base_size"):
        return tuple(pipe.base_size)
    from .apply import _supported_classes

    transformer = getattr(pipe, "transformer", None)
    if _supported_classes().get(type(transformer)) == "sd3":
        side = int(transformer.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
        return side, side
    return FLUX_BASE_SIZE


def load_any_pipeline(model: str | None, device: str = "cpu", offload: bool = False):
    """The toy pipeline (``model`` None or a toy weights folder) or a diffusers FLUX / SD3 pipeline."""
    if is_toy_folder(model):
        from .toy import load_pipeline

        return load_pipeline(model or _TOY_WEIGHTS, device=device)
    import torch
    from diffusers import DiffusionPipeline

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        pipe = DiffusionPipeline.from_pretrained(model, dtype=dtype)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"could not load {model!r} ({err}). Pass a local folder in the diffusers layout, or a hub id you can "
            "reach; for a gated model (FLUX.1-dev) accept its licence on the hub and log in (`hf auth login`)."
        ) from err
    from .apply import family

    try:
        family(getattr(pipe, "transformer", None))
    except TypeError as err:
        raise ModelLoadError(f"{model!r} loads as {type(pipe).__name__}: {err}") from err
    if offload:
        pipe.enable_model_cpu_offload(device=device)  # models wait on the CPU, run on `device`
    else:
        pipe.to(device)
    return pipe
