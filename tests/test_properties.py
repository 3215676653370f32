"""Property: any request either is refused with ResDiTConfigError before work, or returns finite images of the
asked size (sizes, aspect ratios, scales, cutoffs, splice widths, pooling)."""

import math

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import resdit
from resdit import ResDiTConfig, ResDiTConfigError


@pytest.fixture(scope="module")
def toy():
    from resdit.toy import load_pipeline

    pipe = load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def mostly(valid, invalid):
    """Valid values nine times in ten, so most examples generate and some are refused."""
    return st.integers(0, 9).flatmap(lambda k: valid if k < 9 else invalid)


side = mostly(st.integers(2, 48).map(lambda x: 2 * x), st.integers(-2, 100))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=side, width=side,
       cutoff=mostly(st.floats(0.0, math.sqrt(2)), st.one_of(st.floats(-0.5, 2.0), st.just(math.nan))),
       sigma=mostly(st.floats(0.01, 3.0), st.one_of(st.floats(-0.1, 0.02), st.just(math.nan))),
       mode=st.sampled_from(["resdit", "resdit_paper", "resdit_fast", "scaled_pe", "patch_pe_local", "tiling",
                             "two_stage"]),
       tokens=mostly(st.sampled_from([None, "full"]), st.just("base")), upsampler=st.sampled_from(["bilinear", "fft"]),
       steps=mostly(st.integers(1, 3), st.integers(-1, 0)))
def test_requests_are_refused_or_give_finite_images_of_their_size(toy, height, width, cutoff, sigma, mode, tokens,
                                                                  upsampler, steps):
    if mode in ("resdit", "resdit_paper") and tokens is None:
        tokens = "base"  # the option where it applies; elsewhere "base" must be refused
    try:
        cfg = ResDiTConfig(base_size=(32, 32), mode=mode, cutoff=cutoff, splice_width=sigma, global_tokens=tokens,
                           upsampler=upsampler)
        images = resdit.generate(toy, "a blue checkered square at bottom right", cfg, height, width, steps, seed=0)
    except ResDiTConfigError as err:
        event(f"refused: {str(err)[:40]}")
        return
    event("generated")
    assert images.shape == (1, 3, height, width)
    assert torch.isfinite(images).all()
    assert images.std() > 0  # not a constant (black) image
    assert math.isfinite(cutoff) and 0 <= cutoff <= math.sqrt(2) + 1e-9 and sigma >= 0.01 and steps >= 1
