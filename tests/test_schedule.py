import pytest

from resdit import ResDiTConfigError, phase_at, phase_lengths


@pytest.mark.parametrize("steps,expected", [(35, (10, 10, 15)), (20, (6, 5, 9)), (4, (1, 1, 2))])
def test_phases_keep_the_paper_fractions(steps, expected):
    assert phase_lengths(steps) == expected


def test_phase_sequence_for_35_steps():
    phases = [phase_at(i, 35) for i in range(35)]
    assert phases == ["global"] * 10 + ["fused"] * 10 + ["local"] * 15


def test_explicit_phase_lengths_override_fractions():
    assert phase_lengths(35, global_steps=5, local_steps=0) == (5, 30, 0)


def test_schedule_longer_than_steps_is_an_error():
    with pytest.raises(ResDiTConfigError, match="longer than the 10 denoising steps"):
        phase_lengths(10, global_steps=6, local_steps=5)
