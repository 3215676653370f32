"""resdit: training-free, single-stage high-resolution generation for Diffusion Transformers.

Public API:
    >>> import resdit
    >>> cfg = resdit.ResDiTConfig(base_size=(1024, 1024), mode="resdit")
    >>> resdit.window_starts(256, 64)
    [0, 48, 96, 144, 192]
"""

from .apply import ResDiTState, apply_resdit, enabled, get_state, remove_resdit, set_step
from .config import MODES, ModeSpec, ResDiTConfig, ResDiTConfigError
from .generate import generate
from .geometry import WindowPartition, window_starts
from .record import AttentionCache, list_points, record
from .schedule import phase_at, phase_lengths

__all__ = [
    "AttentionCache", "MODES", "ModeSpec", "ResDiTConfig", "ResDiTConfigError", "ResDiTState", "WindowPartition", "apply_resdit",
    "enabled", "generate", "get_state", "list_points", "phase_at", "phase_lengths", "record", "remove_resdit", "set_step", "window_starts",
]
__version__ = "0.1.0"
