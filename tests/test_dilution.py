"""The attention-dilution measurement (analysis/dilution.py) on a tiny untrained toy pipeline."""

import pytest
import torch

from analysis.dilution import attention_dilution, table
from resdit.toy.model import build_scheduler, build_text_encoder, build_transformer
from resdit.toy.pipeline import ToyFluxPipeline


@pytest.fixture(scope="module")
def rows():
    torch.manual_seed(0)
    pipe = ToyFluxPipeline(build_transformer(num_layers=1, num_single_layers=1).eval(), build_text_encoder().eval(),
                           build_scheduler(), {"base_size_px": [16, 16]})
    pipe.set_progress_bar_config(disable=True)
    return attention_dilution(pipe, scales=(1.0, 2.0), prompts=2, steps=3, record_steps=(0, 2), progress=False)


def test_base_size_is_the_reference_and_proportional_attention_is_identity_there(rows):
    off, on = (next(r for r in rows if r["scale"] == 1.0 and r["setting"] == s) for s in ("off", "on"))
    assert off["tokens"] == 1 and off["spread"] == {0: 1.0, 2: 1.0}
    assert on["entropy"] == pytest.approx(off["entropy"], abs=1e-5)  # the logit factor is 1 at the base size


def test_more_tokens_spread_attention_and_proportional_attention_sharpens_it(rows):
    off, on = (next(r for r in rows if r["scale"] == 2.0 and r["setting"] == s) for s in ("off", "on"))
    assert off["tokens"] == 4
    for step in (0, 2):
        assert off["spread"][step] > 1.5  # an untrained model attends almost uniformly: spread near the token ratio
        assert on["entropy"][step] < off["entropy"][step] - 0.05  # softmax of scaled logits has lower entropy
    assert "| 2x | full size, proportional attention | 4 |" in table(rows)


def test_bad_requests_fail_before_any_generation():
    with pytest.raises(ValueError, match="below steps"):
        attention_dilution(None, record_steps=(0, 20), steps=20)
    with pytest.raises(ValueError, match="must include 1"):
        attention_dilution(None, scales=(2.0, 4.0))


def test_the_base_token_branch_attends_over_the_base_size_count_of_keys(rows):
    """Pooled to 8x8 blocks at 2x, the global branch's queries spread over about as many keys as at the base size
    (a little more: block means of q and k are shorter vectors, so their logits are flatter), not 4x as many."""
    full = next(r for r in rows if r["scale"] == 2.0 and r["setting"] == "off")
    pooled = next(r for r in rows if r["scale"] == 2.0 and r["setting"] == "base tokens, no pa")
    for step in (0, 2):
        assert pooled["spread"][step] < 1.6 < 2.5 < full["spread"][step]
