"""What resdit reads from and changes on a diffusers flow-matching scheduler: the step and noise level of
the current call, the base size's shift (``mu``), and the noise levels of the paper's phase boundaries.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .config import REFERENCE_STEPS, ResDiTConfig
from .schedule import reference_steps
from .state import ResDiTState, patch_attr


def scheduler_position(scheduler) -> tuple[int, int]:
    begin = getattr(scheduler, "begin_index", None) or 0
    index = scheduler.step_index if scheduler.step_index is not None else begin
    return index - begin, len(scheduler.timesteps) - begin


def scheduler_sigma(scheduler) -> float | None:
    sigmas, index = getattr(scheduler, "sigmas", None), getattr(scheduler, "step_index", None)
    if sigmas is None:
        return None
    if index is None:
        index = getattr(scheduler, "begin_index", None) or 0
    return float(sigmas[index])


def sigma_boundaries(scheduler, base_grid: tuple[int, int], config: ResDiTConfig,
                     base_mu=None) -> tuple[float, float]:
    """Noise levels of the first fused and the first local step of the paper's 35 steps (10 and 20 by default)
    on the base size's schedule: a fresh scheduler of the same config, FLUX's sigmas ``linspace(1, 1/35, 35)``,
    shifted with the base size's ``mu`` where the scheduler shifts by resolution (``base_mu``: the family's
    ``mu(scheduler, base_grid, num_steps)``, default :func:`base_shift`)."""
    fresh = type(scheduler).from_config(scheduler.config)
    kwargs = {}
    if getattr(fresh.config, "use_dynamic_shifting", False):
        kwargs["mu"] = (base_mu or _linear_mu)(fresh, base_grid, REFERENCE_STEPS)
    fresh.set_timesteps(sigmas=np.linspace(1.0, 1 / REFERENCE_STEPS, REFERENCE_STEPS), **kwargs)
    first_fused, first_local = reference_steps(config.global_steps, config.local_steps, config.local_fraction)
    sigmas = fresh.sigmas  # REFERENCE_STEPS + 1 values: the last is 0, so no local phase when first_local = 35
    return float(sigmas[first_fused]), float(sigmas[first_local])


def base_shift(scheduler, base_grid: tuple[int, int]) -> float:
    """The ``mu`` FLUX pipelines compute for the base grid's token count (FLUX.1 at 1024^2: 1.15)."""
    c = scheduler.config
    slope = (c.max_shift - c.base_shift) / (c.max_image_seq_len - c.base_image_seq_len)
    return c.base_shift + slope * (base_grid[0] * base_grid[1] - c.base_image_seq_len)


def _linear_mu(scheduler, base_grid, num_steps) -> float:
    return base_shift(scheduler, base_grid)


def patch_shift(state: ResDiTState, scheduler, base_mu=None) -> None:
    """The scheduler shift of ``config.shift``, computed in a form that cannot overflow at any size.

    ``base_mu(scheduler, base_grid, num_steps)``: the family's shift at the base size (default :func:`base_shift`,
    FLUX.1's linear rule; FLUX.2 also reads the step count). A scheduler with a static shift (SD3.5's) has no
    size-dependent shift to replace.
    """
    if not getattr(scheduler.config, "use_dynamic_shifting", False):
        return
    exponential = getattr(scheduler, "_time_shift_exponential", None)
    if exponential is not None:
        def safe_exponential(mu, sigma, t):
            try:
                return exponential(mu, sigma, t)
            except OverflowError:  # exp(mu) / (exp(mu) + x) = 1 / (1 + exp(-mu) x), finite for any mu
                return 1.0 / (1.0 + math.exp(-mu) * (1 / t - 1) ** sigma)

        patch_attr(state, scheduler, "_time_shift_exponential", safe_exponential)
    shift = state.config.shift
    if shift == "pipeline":
        return
    set_timesteps = scheduler.set_timesteps

    @functools.wraps(set_timesteps)  # pipelines inspect its signature
    def shifted(*args, **kwargs):
        if shift == "base":
            steps = kwargs.get("num_inference_steps", args[0] if args else None)
            if steps is None and kwargs.get("sigmas") is not None:
                steps = len(kwargs["sigmas"])
            kwargs["mu"] = (base_mu or _linear_mu)(scheduler, state.base_grid, steps)
        else:
            kwargs["mu"] = float(shift)
        return set_timesteps(*args, **kwargs)

    patch_attr(state, scheduler, "set_timesteps", shifted)
