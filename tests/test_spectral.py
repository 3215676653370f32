import math

import torch

from resdit.spectral import band_energy, radial_mask, spectral_fuse


def test_cutoff_sqrt2_returns_the_global_branch():
    g, loc = torch.randn(3, 8, 8, 4), torch.randn(3, 8, 8, 4)
    torch.testing.assert_close(spectral_fuse(g, loc, radial_mask((8, 8), math.sqrt(2))), g, atol=1e-5, rtol=0)


def test_cutoff_zero_takes_only_the_mean_from_the_global_branch():
    g, loc = torch.randn(2, 6, 10, 3), torch.randn(2, 6, 10, 3)
    fused = spectral_fuse(g, loc, radial_mask((6, 10), 0.0))
    torch.testing.assert_close(fused.mean((1, 2)), g.mean((1, 2)), atol=1e-5, rtol=0)
    torch.testing.assert_close(fused - fused.mean((1, 2), keepdim=True), loc - loc.mean((1, 2), keepdim=True),
                               atol=1e-5, rtol=0)


def test_fusion_takes_low_frequencies_from_global_and_high_from_local():
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    low = torch.cos(2 * math.pi * x / 16)[..., None]  # rho = 0.125
    high = torch.cos(2 * math.pi * x / 2)[..., None]  # rho = 1
    fused = spectral_fuse(low + 0 * high, high, radial_mask((16, 16), 0.2))
    torch.testing.assert_close(fused, low + high, atol=1e-5, rtol=0)


def test_band_energies_add_up_to_total_energy():
    x = torch.randn(4, 8, 7, 3)
    lo, hi = band_energy(x, radial_mask((8, 7), 0.3))
    torch.testing.assert_close(lo + hi, x.pow(2).sum((1, 2, 3)), rtol=1e-4, atol=1e-4)


def test_paper_cutoff_on_a_16_token_window_keeps_few_coefficients():
    # SPEC 2: cutoff 0.2 on 16 tokens keeps the DC term and the first harmonics, 9 coefficients of
    # the full 2-D spectrum; rfft2 stores the x >= 0 half, so columns x > 0 stand for two each.
    mask = radial_mask((16, 16), 0.2)
    assert int(mask[:, 0].sum() + 2 * mask[:, 1:].sum()) == 9
