"""resdit: training-free, single-stage high-resolution generation for Diffusion Transformers.

Public API:
    >>> import resdit
    >>> cfg = resdit.ResDiTConfig(base_size=(1024, 1024), mode="resdit")
    >>> resdit.window_starts(256, 64)
    [0, 48, 96, 144, 192]
"""

import logging
import sys
import types


class _NoTorchvisionFallbackNotice(logging.Filter):
    """transformers announces, once per image-processor class that diffusers' pipelines import, that it falls
    back to PIL without torchvision. resdit never uses an image processor, so the notice is noise in every
    notebook and command; other transformers warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_NoTorchvisionFallbackNotice())

# Names resolve on first use, so `resdit --help` and argument errors do not wait for torch and diffusers.
_EXPORTS = {
    "ResDiTState": "apply", "apply_resdit": "apply", "enabled": "apply", "get_state": "apply",
    "remove_resdit": "apply", "set_step": "apply",
    "MODES": "config", "ModeSpec": "config", "ResDiTConfig": "config", "ResDiTConfigError": "config",
    "generate": "generate", "WindowPartition": "geometry", "window_starts": "geometry",
    "AttentionCache": "record", "list_points": "record", "record": "record",
    "phase_at": "schedule", "phase_lengths": "schedule",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'resdit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])


class _Package(types.ModuleType):
    """Importing the submodules ``resdit.record`` or ``resdit.generate`` binds them on the package, over the
    functions of the same name; keep the public functions there."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__version__ = "0.1.0"
