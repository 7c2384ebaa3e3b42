"""Every worked example of the source material, against the values verified with PyTorch 2.13
(shared/source-material.md), and the tour that prints them."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _support import assert_close

from losskit.cli._tour import tour
from losskit import nll_loss
from losskit.cli._worked_examples import EXAMPLES, WINE_4_MODEL_TWO, WINE_MODELS, WINE_TARGET

# (example number, title fragment) -> verified value, copied from the source material's table
VERIFIED = {
    (1, "two rows"): 2.215217,
    (2, "NLLLoss"): -0.386140,
    (3, "model one"): 0.510826,
    (3, "model two"): 1.406705,
    (4, "model one"): 1.378389,
    (4, "model two"): 0.543214,
    (5, "L1"): 0.35,
    (6, "MSE"): 0.145,
    (7, "logits"): 0.853287,
    (8, "softmax"): [0.659001, 0.242433, 0.098566],
    (9, "model one"): [0.916291, 0.916291, 2.302585],
    (9, "model two"): [0.356675, 0.356675, 1.203973],
}
CLAIMED_BY_THE_RIGHT_CALL = {2: 1.353693, 5: 1.4, 7: 0.510826}


def _example(number: int, fragment: str):  # noqa: ANN202
    (found,) = [e for e in EXAMPLES if e.number == number and fragment in e.title]
    return found


@pytest.mark.parametrize(("key", "expected"), list(VERIFIED.items()), ids=str)
def test_values_match_the_verified_table(key: tuple[int, str], expected: object) -> None:
    assert_close(_example(*key).value(), np.asarray(expected), rtol=0, atol=5e-7)


def test_exactly_the_three_known_claims_are_wrong_and_explained() -> None:
    wrong = {e.number for e in EXAMPLES if e.claim_is_wrong}
    assert wrong == {2, 5, 7}
    for e in EXAMPLES:
        if e.claim_is_wrong:
            assert e.claim_call is not None
            assert float(e.claim_call()) == pytest.approx(CLAIMED_BY_THE_RIGHT_CALL[e.number], abs=5e-7)


def test_the_tour_names_the_wrong_claims_and_ranks_the_wine_models() -> None:
    lines: list[str] = []
    assert tour(lines.append) == [2, 5, 7]
    text = "\n".join(lines)
    assert "Wrong claims in the tutorials: #2, #5, #7" in text
    assert "model one: error rate 0.333, cross-entropy 1.378389" in text
    assert "model two: error rate 0.333, cross-entropy 0.639108" in text
    assert "#7 cross_entropy(x, target=[1]) returns 0.853287, not the tutorial's 0.51" in text
    assert "losskit check flags it: [unnormalised-log-probabilities]" in text  # the row summing to 1.1


def test_python_dash_m_losskit_runs_the_tour(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "losskit", "tour", "--no-figures"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "nll_loss(softmax(x), target=[1, 0, 4]) = -0.386140   (tutorial: 1.3537, WRONG)" in done.stdout
    assert list(tmp_path.iterdir()) == []


def _tour_text() -> str:
    lines: list[str] = []
    tour(lines.append)
    return "\n".join(lines)


def test_every_claim_is_judged_against_a_number_the_tour_prints() -> None:
    judged = re.findall(r"= (?:\[[-\d., ]+\], mean )?(-?\d+\.\d{6})   \(tutorial: ([\d.]+), (right|right, truncated to (\d) decimals|WRONG)\)", _tour_text())
    claimed = [e for e in EXAMPLES if e.claim is not None]
    assert len(judged) == len(claimed)
    for (printed, claim, verdict, _), example in zip(judged, claimed, strict=True):
        assert printed == f"{np.mean(example.value()):.6f}" and float(claim) == example.claim
        decimals = len(claim.partition(".")[2])
        rounded, truncated = f"{float(printed):.{decimals}f}", f"{math.trunc(float(printed) * 10**decimals) / 10**decimals:.{decimals}f}"
        expected = "right" if rounded == claim else f"right, truncated to {decimals} decimals" if truncated == claim else "WRONG"
        assert verdict == expected, (example.number, printed, claim)
    assert "mean 0.639108   (tutorial: 0.63, right, truncated to 2 decimals)" in _tour_text()


def test_the_ranking_says_why_model_two_scores_otherwise_in_example_4() -> None:
    ranking = _tour_text().partition("Why cross-entropy ranks")[2].partition("Wrong claims")[0]
    in_example_4 = f"{float(nll_loss(np.log(WINE_4_MODEL_TWO), WINE_TARGET)):.6f}"
    assert in_example_4 == "0.543214" and in_example_4 in ranking
    assert "example 4 gives model two's last row as (0.4, 0.3, 0.3), example 9 as (0.3, 0.4, 0.3)" in ranking.lower()
    ranked = float(nll_loss(np.log(WINE_MODELS["model two"]), WINE_TARGET))
    assert f"cross-entropy {ranked:.6f}" in ranking


def test_no_value_is_called_right_and_meaningless() -> None:
    text = _tour_text()
    assert "a meaningless negative number" in text  # what losskit check says of example 2's call
    assert "right value" not in text
    assert ("#2 nll_loss(softmax(x), target=[1, 0, 4]) returns -0.386140, not the tutorial's 1.3537, "
            "which is nll_loss(log_softmax(x), target=[1, 0, 4]) = 1.353693") in text
