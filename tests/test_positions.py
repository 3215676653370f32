import math

import torch
from conftest import tiny_flux

from resdit.geometry import WindowPartition
from resdit.positions import (base_frequencies, dynamic_ntk_frequencies, extrapolated_ids, ntk_frequencies,
                              patch_ids, rope_table, scaled_ids)


def test_scaled_ids_map_the_grid_onto_the_base_range():
    ids = scaled_ids((32, 48), (16, 16))
    assert ids[:, 1].max().item() == 31 / 2 and math.isclose(ids[:, 2].max().item(), 47 / 3, rel_tol=1e-6)
    assert ids.dtype == torch.float32


def test_scaled_ids_never_stretch_an_axis_smaller_than_the_base():
    torch.testing.assert_close(scaled_ids((8, 32), (16, 16))[:, 1], extrapolated_ids((8, 32))[:, 1])


def test_float32_ids_stay_exact_beyond_bf16_range():
    ids = extrapolated_ids((2, 600))
    assert torch.equal(ids[:, 2][:600], torch.arange(600.0))


def test_patch_ids_restart_in_every_window():
    part = WindowPartition.build((16, 16), (8, 8))  # windows start at 0, 4, 8 -> nearest-centre offsets
    rows = patch_ids(part)[:, 1].reshape(16, 16)[:, 0]
    assert rows.max() < 8 and rows[0] == 0 and rows[-1] == 7


def test_rope_table_with_base_frequencies_equals_flux_pos_embed():
    model = tiny_flux()
    ids = torch.cat([torch.zeros(3, 3), scaled_ids((10, 12), (4, 4))])
    cos, sin = rope_table(ids, model.pos_embed.axes_dim, model.pos_embed.theta)
    ref_cos, ref_sin = model.pos_embed(ids)
    assert torch.equal(cos, ref_cos) and torch.equal(sin, ref_sin)


def test_ntk_frequencies_match_hand_computed_values():
    # d = 8, theta = 10000, theta x 10, scale 4: ntk_i = 1e5^(-i/4), pi_i = 1e4^(-i/4) / 4
    got = ntk_frequencies(8, 10000.0, 4.0, theta_factor=10.0)
    ntk = [1.0, 1e5 ** -0.25, 1e5 ** -0.5, 1e5 ** -0.75]
    pi = [1.0 / 4, 1e4 ** -0.25 / 4, 1e4 ** -0.5 / 4, 1e4 ** -0.75 / 4]
    expected = [max(a, b) for a, b in zip(ntk, pi)]
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))
    assert got[0] == 1.0 and got[-1] == pi[-1]  # highest kept, lowest clipped to interpolation


def test_dynamic_ntk_at_scale_one_is_the_base_rope():
    torch.testing.assert_close(dynamic_ntk_frequencies(12, 10000.0, 1.0), base_frequencies(12, 10000.0))
    f = dynamic_ntk_frequencies(12, 10000.0, 2.0)
    torch.testing.assert_close(f, base_frequencies(12, 10000.0 * 2 ** (12 / 10)))
    assert f[-1] < base_frequencies(12, 10000.0)[-1] and f[0] == 1.0
    assert math.isclose(f[-1].item(), (10000.0 * 2 ** 1.2) ** (-10 / 12))
