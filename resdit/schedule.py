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

from .config import DEFAULT_GLOBAL_FRACTION, DEFAULT_LOCAL_FRACTION, REFERENCE_STEPS, ResDiTConfigError

GLOBAL, FUSED, LOCAL = "global", "fused", "local"


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (Python's round() rounds halves to even)."""
    return int(math.floor(x + 0.5))


def phase_lengths(num_steps: int, global_steps: int | None = None, local_steps: int | None = None,
                  local_fraction: float = DEFAULT_LOCAL_FRACTION) -> tuple[int, int, int]:
    """``(global, fused, local)`` step counts for ``num_steps`` steps (``local_fraction``: the local phase's share
    when ``local_steps`` is None).

    Raises:
        ResDiTConfigError: if the explicit phases are longer than the step count.
    """
    if num_steps < 1:
        raise ResDiTConfigError(f"num_steps={num_steps} must be >= 1.")
    g = round_half_up(num_steps * DEFAULT_GLOBAL_FRACTION) if global_steps is None else global_steps
    loc = round_half_up(num_steps * local_fraction) if local_steps is None else local_steps
    if g + loc > num_steps:
        raise ResDiTConfigError(
            f"global_steps={g} + local_steps={loc} is longer than the {num_steps} denoising steps; "
            f"lower them or run at least {g + loc} steps."
        )
    return g, num_steps - g - loc, loc


def check_steps(config, num_steps: int) -> None:
    """Raise :class:`ResDiTConfigError` now if a :class:`ResDiTConfig`'s phased schedule does not fit ``num_steps``
    steps. With ``phase_by="sigma"`` the phases count the paper's 35 steps (checked on construction) and fit any
    step count."""
    if config.spec.schedule == "phased" and config.phase_by == "steps":
        phase_lengths(num_steps, config.global_steps, config.local_steps, config.local_fraction)


def phase_at(step: int, num_steps: int, global_steps: int | None = None, local_steps: int | None = None,
             local_fraction: float = DEFAULT_LOCAL_FRACTION) -> str:
    """The phase (``"global"``, ``"fused"`` or ``"local"``) of step ``step`` (0-based)."""
    if not 0 <= step < num_steps:
        raise ResDiTConfigError(f"step {step} is outside 0..{num_steps - 1}.")
    g, f, _ = phase_lengths(num_steps, global_steps, local_steps, local_fraction)
    return GLOBAL if step < g else FUSED if step < g + f else LOCAL


def reference_steps(global_steps: int | None = None, local_steps: int | None = None,
                    local_fraction: float = DEFAULT_LOCAL_FRACTION) -> tuple[int, int]:
    """Indices of the first fused and the first local step on the paper's 35-step schedule (10 and 20; the
    second is 35, past the end, when there is no local phase)."""
    g, _, loc = phase_lengths(REFERENCE_STEPS, global_steps, local_steps, local_fraction)
    return g, REFERENCE_STEPS - loc


def phase_at_sigma(sigma: float, boundaries: tuple[float, float], tolerance: float = 1e-5) -> str:
    """The phase at noise level ``sigma`` given ``(sigma of the first fused step, sigma of the first local step)``
    of the reference schedule: global above the first, local at or below the second, fused between.

    Example:
        >>> [phase_at_sigma(s, (0.9, 0.7)) for s in (1.0, 0.9, 0.8, 0.7, 0.1)]
        ['global', 'fused', 'fused', 'local', 'local']
    """
    fused_from, local_from = boundaries
    if sigma > fused_from + tolerance:
        return GLOBAL
    return LOCAL if sigma <= local_from + tolerance else FUSED


def branches(phase: str) -> tuple[bool, bool]:
    """``(runs the global branch, runs the local branch)`` in a phase.

    Example:
        >>> branches("fused")
        (True, True)
    """
    if phase not in (GLOBAL, FUSED, LOCAL):
        raise ValueError(f"Unknown phase {phase!r}.")
    return phase != LOCAL, phase != GLOBAL
