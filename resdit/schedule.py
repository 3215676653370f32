"""The timestep schedule: which branch runs at which denoising step.

SPEC 1: of 35 steps the first 10 run the global branch only, the last 15 the local branch
only, and the steps between fuse both. For another step count the phases keep their
fractions, rounded half up; explicit phase lengths override the fractions.

Example:
    >>> phase_lengths(35)
    (10, 10, 15)
    >>> [phase_at(i, 4) for i in range(4)]
    ['global', 'fused', 'local', 'local']
"""

from __future__ import annotations

import math

from .config import DEFAULT_GLOBAL_FRACTION, DEFAULT_LOCAL_FRACTION, ResDiTConfigError

GLOBAL, FUSED, LOCAL = "global", "fused", "local"


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (Python's round() rounds halves to even)."""
    return int(math.floor(x + 0.5))


def phase_lengths(num_steps: int, global_steps: int | None = None, local_steps: int | None = None) -> tuple[int, int, int]:
    """``(global, fused, local)`` step counts for ``num_steps`` steps.

    Raises:
        ResDiTConfigError: if the explicit phases are longer than the step count.
    """
    if num_steps < 1:
        raise ResDiTConfigError(f"num_steps={num_steps} must be >= 1.")
    g = round_half_up(num_steps * DEFAULT_GLOBAL_FRACTION) if global_steps is None else global_steps
    loc = round_half_up(num_steps * DEFAULT_LOCAL_FRACTION) if local_steps is None else local_steps
    if g + loc > num_steps:
        raise ResDiTConfigError(
            f"global_steps={g} + local_steps={loc} is longer than the {num_steps} denoising steps; "
            f"lower them or run at least {g + loc} steps."
        )
    return g, num_steps - g - loc, loc


def phase_at(step: int, num_steps: int, global_steps: int | None = None, local_steps: int | None = None) -> str:
    """The phase (``"global"``, ``"fused"`` or ``"local"``) of step ``step`` (0-based)."""
    if not 0 <= step < num_steps:
        raise ResDiTConfigError(f"step {step} is outside 0..{num_steps - 1}.")
    g, f, _ = phase_lengths(num_steps, global_steps, local_steps)
    return GLOBAL if step < g else FUSED if step < g + f else LOCAL
