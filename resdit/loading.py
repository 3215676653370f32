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

from .families import FAMILIES, pipeline_family

FLUX_BASE_SIZE = (1024, 1024)
_TOY_WEIGHTS = Path(__file__).parent / "toy" / "weights"


class ModelLoadError(ValueError):
    """Weights missing, gated or unreachable, or a model resdit does not support."""


@dataclass(frozen=True)
class ModelInfo:
    """What a model is, read from its JSON files.

    Attributes:
        family: a family name (:mod:`resdit.families`); None where it cannot be told without loading (a hub id).
        pixels_per_token: image pixels per token side (toy: 2; FLUX.1, SD3: 16); None if unknown.
        world: the toy world of a toy model (``"v1"``, ``"v2"``), else None.
    """

    family: str | None
    pixels_per_token: int | None
    world: str | None = None
    hidden: int | None = None  # the transformer's width (heads x head dim), for the memory estimate

    @property
    def is_toy(self) -> bool:
        return self.world is not None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


TOY_FILES = ("config.json", "transformer.safetensors", "text_encoder.safetensors")


def is_toy_folder(model: str | Path | None) -> bool:
    """The shipped toy model (None) or a folder with any of a toy model's files (a diffusers folder has
    ``model_index.json`` instead)."""
    if model is None:
        return True
    root = Path(model)
    return not (root / "model_index.json").exists() and any((root / f).exists() for f in TOY_FILES)


def check_safetensors(path: Path) -> None:
    """ModelLoadError naming ``path`` if it is missing, empty, truncated or not a safetensors file (reads the
    header only: 8 bytes of length, the JSON header, and the file size its tensors need)."""
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing.")
    size = path.stat().st_size
    problem = None
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                problem = f"is {'empty' if size == 0 else 'truncated'} ({size} bytes)"
            else:
                n = int.from_bytes(head, "little")
                if n > size - 8:
                    problem = f"is truncated or not a safetensors file (header of {n} bytes in {size})"
                else:
                    header = json.loads(f.read(n))
                    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
                    need = 8 + n + max(ends, default=0)
                    if need > size:
                        problem = f"is truncated: its tensors need {need} bytes, the file has {size}"
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        problem = f"cannot be read as safetensors ({type(err).__name__}: {err})"
    if problem:
        raise ModelLoadError(f"{path} {problem}; restore it (or retrain / re-download the model).")


def read_config(path: Path) -> dict:
    """A JSON config as a dict, or ModelLoadError naming the file and what is wrong with it."""
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing.")
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{path} is not valid JSON ({err}); restore it.") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path} holds a {type(value).__name__}, not a JSON object; restore it.")
    return value


def check_folder(model: str | Path | None) -> None:
    """Everything about a model folder that can be wrong without loading it, as one ModelLoadError naming the
    file: a toy folder's config.json and two safetensors files; a diffusers folder's model_index.json, each
    component's config and weights. Hub ids (not folders) pass: they are checked when loaded."""
    if model is None:
        model = _TOY_WEIGHTS
    root = Path(model)
    if not root.exists():
        if root.is_absolute() or str(model).startswith((".", "~")) or str(model).count("/") != 1:
            raise ModelLoadError(f"no model at {model!r}: not a folder, and a hub id has the form owner/name. Pass a "
                                 "local folder in the diffusers layout (or a toy weights folder), or a hub id.")
        return  # owner/name: a hub id
    if not root.is_dir():
        raise ModelLoadError(f"{model!r} is a file; pass the model's folder.")
    if is_toy_folder(root):
        read_config(root / "config.json")
        for name in TOY_FILES[1:]:
            check_safetensors(root / name)
        return
    index = read_config(root / "model_index.json")
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or entry[0] is None:
            continue
        sub = root / name
        if not sub.is_dir():
            raise ModelLoadError(f"{sub} is missing (model_index.json lists component {name!r}).")
        if (sub / "config.json").exists():
            read_config(sub / "config.json")
        for weights in sorted(sub.glob("*.safetensors")):
            check_safetensors(weights)


def peek(model: str | Path | None) -> ModelInfo:
    """Family, pixels per token and toy world of ``model`` (None: the shipped toy model), without torch."""
    if is_toy_folder(model):
        card = read_config(Path(model or _TOY_WEIGHTS) / "config.json")
        return ModelInfo("flux", int(card.get("pixels_per_token", 2)), card.get("world", "v1"), _width(
            card.get("transformer", {})))
    root = Path(model)
    if not (root / "model_index.json").exists():
        return ModelInfo(None, None)  # a hub id: decided after loading
    index = read_config(root / "model_index.json")
    name = str(index.get("_class_name", ""))
    fam = pipeline_family(name)
    if fam is None:
        raise ModelLoadError(f"{model!r} is a {name or 'pipeline of unknown class'}; resdit supports the pipelines "
                             f"of {', '.join(f.label for f in FAMILIES.values())} (and their ControlNet variants).")
    vae = _read_json(root / "vae" / "config.json") or {}
    vae_factor = 2 ** (len(vae.get("block_out_channels", [0, 0, 0, 0])) - 1)
    transformer = _read_json(root / "transformer" / "config.json") or {}
    return ModelInfo(fam.name, vae_factor * fam.patch(transformer), hidden=_width(transformer))


def _width(config: dict) -> int | None:
    try:
        return int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    except (KeyError, TypeError, ValueError):
        return None


def base_size_of(pipe, override=None) -> tuple[int, int]:
    """Training size in pixels: ``override``, the toy model's card, or the family's (SD3: ``sample_size`` x the
    VAE factor, 1024x1024 for SD3 and SD3.5; FLUX.1 and Chroma: 1024x1024)."""
    if override is not None:
        return tuple(int(x) for x in override)
    if hasattr(pipe, "base_size"):
        return tuple(pipe.base_size)
    from .families import family_of, supported_classes

    transformer = getattr(pipe, "transformer", None)
    transformer = getattr(transformer, "_orig_mod", transformer)  # torch.compile's wrapper
    if type(transformer) in supported_classes():
        return family_of(transformer)[0].pipeline_base_size(pipe)
    return FLUX_BASE_SIZE


def load_any_pipeline(model: str | None, device: str = "cpu", offload: bool = False):
    """The toy pipeline (``model`` None or a toy weights folder) or a diffusers FLUX / SD3 pipeline."""
    check_folder(model)
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
