"""Numbers quoted in README, the docs and the model card equal the result files they cite."""

import json

import pytest

from analysis.quotes import REPO, check, resolve, tagged

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "resdit/toy/weights/MODEL_CARD.md"]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_quoted_numbers_agree_with_their_result_files(path):
    assert check(path) == []


def test_the_headline_documents_quote_their_numbers_by_tag():
    assert tagged(REPO / "README.md") >= 5
    assert tagged(REPO / "docs" / "findings.md") >= 10


def test_an_edited_number_fails_and_selectors_pick_one_element(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"groups": [{"condition": "a", "scale": 2.0, "x": {"mean": 0.974}},
                                                            {"condition": "a", "scale": 4.0, "x": {"mean": 0.5}}]}))
    ref = "r.json#groups[condition=a,scale=2].x.mean"
    assert resolve(ref, tmp_path) == 0.974
    assert resolve(f"{ref}~r.json#groups[condition=a,scale=4].x.mean", tmp_path) == pytest.approx(1.948)
    good, bad = tmp_path / "good.md", tmp_path / "bad.md"
    good.write_text(f"ResDiT keeps 0.97<!-- q:{ref} --> and 97 %<!-- q:{ref}*100 -->.")
    bad.write_text(f"ResDiT keeps 0.98<!-- q:{ref} -->.")
    assert check(good, tmp_path) == [] and len(check(bad, tmp_path)) == 1
    with pytest.raises(KeyError):
        resolve("r.json#groups[condition=a].x", tmp_path)
