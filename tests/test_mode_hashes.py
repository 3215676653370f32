"""Every mode's output on the toy model and on tiny FLUX/SD3 pipelines equals the fingerprint recorded before the
last redesign (scripts/mode_hashes.py; bit for bit there, to 1e-5 on the 4x4 block means here, across machines)."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import mode_hashes  # noqa: E402

RECORDED = json.loads((Path(__file__).parent / "data" / "mode_hashes.json").read_text())


@pytest.fixture(scope="module")
def now():
    threads = torch.get_num_threads()
    try:
        return dict(mode_hashes.collect(quiet=True))
    finally:
        torch.set_num_threads(threads)


def test_every_recorded_case_still_runs(now):
    assert set(RECORDED) == set(now)


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_output_matches_its_recorded_fingerprint(case, now):
    before, after = RECORDED[case], now[case]
    assert before["shape"] == after["shape"]
    torch.testing.assert_close(torch.tensor(after["thumb"]), torch.tensor(before["thumb"]), atol=1e-5, rtol=0)
