"""The ``losskit`` command: tour, check, plot, demo, help and the one-line errors."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli._figures import assert_real_png

import losskit as lk
from losskit.cli import build_parser, main
from losskit.cli._commands import TOUR_FIGURES
from losskit.cli._curves import AXES, PlotSettings, curves
from losskit.cli._explain import explainable

ROOT = Path(__file__).parents[2]


def test_tour_is_the_default_and_names_the_wrong_claims_with_their_right_values(run_cli, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    done = run_cli()
    elapsed = time.perf_counter() - start
    assert done.code == 0, done.err
    assert elapsed < 30, f"the tour took {elapsed:.1f} s"
    out = done.out
    assert "Wrong claims in the tutorials: #2, #5, #7" in out
    assert "#2 nll_loss(softmax(x), target=[1, 0, 4]): the tutorial says 1.3537, the right value is -0.386140" in out
    assert "#5 l1_loss(y_pred, y_true): the tutorial says 1.4, the right value is 0.350000" in out
    assert "#7 cross_entropy(x, target=[1]): the tutorial says 0.51, the right value is 0.853287" in out
    assert "model one: error rate 0.333, cross-entropy 1.378389" in out
    assert "model two: error rate 0.333, cross-entropy 0.639108" in out
    assert "[probabilities-as-log-probabilities]" in out and "[unnormalised-log-probabilities]" in out
    for name in TOUR_FIGURES:
        assert_real_png(tmp_path / "losskit-figures" / name)


def test_tour_writes_its_figures_where_asked_or_not_at_all(run_cli, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    assert run_cli("tour", "--no-figures").code == 0
    assert not (tmp_path / "losskit-figures").exists()
    assert run_cli("tour", "--out-dir", "figs/here").code == 0
    assert sorted(p.name for p in (tmp_path / "figs" / "here").iterdir()) == sorted(TOUR_FIGURES)


def test_the_console_script_is_declared_and_resolves() -> None:
    (entry,) = re.findall(r'^losskit = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    module, _, name = entry.partition(":")
    assert (module, name) == ("losskit.cli", "main")
    assert main is getattr(sys.modules[module], name)


def test_check_lists_findings_and_sets_the_exit_status(run_cli) -> None:  # noqa: ANN001
    done = run_cli("check", "nll_loss", "--input", "[[0.2, 0.8], [0.6, 0.4]]", "--target", "[1, 0]", "--json")
    assert done.code == 1
    (finding,) = json.loads(done.out)
    assert finding["code"] == "probabilities-as-log-probabilities"
    assert finding["intended_value"] == pytest.approx(-np.mean(np.log([0.8, 0.6])))
    clean = run_cli("check", "cross_entropy", "--input", "[[2.0, -1.0, 0.5]]", "--target", "[0]")
    assert (clean.code, clean.out.strip()) == (0, "cross_entropy: no problems found")
    shown = run_cli("check", "kl_div", "--input", "[[-1.2, -0.4]]", "--target", "[[0.3, 0.7]]", "--reduction", "batchmean")
    assert shown.code == 1 and "unnormalised-log-probabilities" in shown.out and "fix:" in shown.out


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_check_also_reports_the_losss_refusal_next_to_its_findings(run_cli, json_flag) -> None:  # noqa: ANN001
    # probabilities where logits belong (a finding) and a class index out of range (a refusal)
    done = run_cli("check", "cross_entropy", "--input", "[[0.2, 0.8]]", "--target", "[5]", *json_flag)
    assert done.code == 1 and "probabilities-as-logits" in done.out
    assert "the loss refuses this call: cross_entropy: target contains class index 5" in done.err
    fine = run_cli("check", "cross_entropy", "--input", "[[0.2, 0.8]]", "--target", "[1]", *json_flag)
    assert fine.code == 1 and fine.err == ""


def test_plot_draws_every_curve_it_offers(run_cli, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "all.png"
    done = run_cli("plot", *curves(), "--out", str(out), "--gamma", "1", "3")
    assert done.code == 0, done.err
    assert_real_png(out, min_width=800)
    single = tmp_path / "ce.png"
    assert run_cli("plot", "cross_entropy", "--out", str(single)).code == 0
    assert_real_png(single)


def test_the_lower_panel_shows_gradient_magnitudes() -> None:
    # Against the probability or the error, the lower panel is |dloss/dz|: never below 0
    # (the axis is cut at 0), and for the regression losses symmetric about z = 0.
    settings = PlotSettings()
    for name, draw in curves().items():
        for curve in draw(settings):
            if curve.kind != "angle":
                assert (curve.lower >= 0).all(), curve.label
            if curve.kind == "error":
                np.testing.assert_allclose(curve.lower, curve.lower[::-1], rtol=1e-12, atol=1e-12)


def test_check_finds_a_margin_in_degrees_and_transposed_centres(run_cli) -> None:  # noqa: ANN001
    x, w = "[[1.0, 0.2], [0.3, -1.0]]", "[[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0]]"
    done = run_cli("check", "arcface_loss", "--input", x, "--centers", w, "--target", "[0, 2]", "--margin", "28.6", "--json")
    assert done.code == 1
    (finding,) = json.loads(done.out)
    assert finding["code"] == "margin-in-degrees"
    assert "math.radians(28.6)" in finding["fix"]
    transposed = run_cli("check", "cosface_loss", "--input", x, "--centers", "[[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]]", "--target", "[0, 2]")
    # the loss refuses centres of the wrong size, but the finding says why: it is reported
    assert transposed.code == 1 and "centers-transposed" in transposed.out
    logits = run_cli("check", "binary_cross_entropy", "--input", "[2.0, -1.0]", "--target", "[1, 0]", "--json")
    (finding,) = json.loads(logits.out)
    assert (logits.code, finding["code"]) == (1, "logits-as-probabilities")
    assert finding["intended_value"] == pytest.approx(F.binary_cross_entropy_with_logits(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0])).item())
    clean = run_cli("check", "arcface_loss", "--input", x, "--centers", w, "--target", "[0, 2]")
    assert (clean.code, clean.out.strip()) == (0, "arcface_loss: no problems found")


def test_plot_draws_the_margin_losses_against_the_angle(run_cli, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "margins.png"
    done = run_cli("plot", "arcface_loss", "cosface_loss", "sphereface_loss", "--fallback", "cosface", "none", "easy",
                   "--lambda", "0", "5", "--out", str(out))
    assert done.code == 0, done.err
    assert_real_png(out)


def test_the_margin_curves_follow_the_papers_formulas() -> None:
    # Two classes, the other centre at 90 degrees (cosine 0): the loss is log(1 + exp(-s psi)).
    theta = np.radians(AXES["angle"].x)
    settings = PlotSettings(fallbacks=("none",), lambdas=(2.0,))
    (arcface,) = curves()["arcface_loss"](settings)
    np.testing.assert_allclose(arcface.lower, np.cos(theta + 0.5), atol=1e-12)
    np.testing.assert_allclose(arcface.loss, np.logaddexp(0, -64 * np.cos(theta + 0.5)), rtol=1e-9, atol=1e-12)
    (cosface,) = curves()["cosface_loss"](settings)
    np.testing.assert_allclose(cosface.lower, np.cos(theta) - 0.35, atol=1e-12)
    (sphereface,) = curves()["sphereface_loss"](settings)
    k = np.minimum(np.floor(theta * 4 / np.pi), 3)
    psi = (2 * np.cos(theta) + (-1) ** k * np.cos(4 * theta) - 2 * k) / 3
    np.testing.assert_allclose(sphereface.lower, psi, atol=1e-9)
    np.testing.assert_allclose(sphereface.loss, np.logaddexp(0, -psi), rtol=1e-9)
    (subcenter,) = curves()["subcenter_arcface_loss"](settings)  # sub-centres at 0 and 180 degrees
    np.testing.assert_allclose(subcenter.lower, np.cos(np.minimum(theta, np.pi - theta) + 0.5), atol=1e-9)


def test_demo_wine_compares_three_losses(run_cli, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "curves.png"
    done = run_cli("demo", "wine", "--epochs", "15", "--out", str(out))
    assert done.code == 0, done.err
    for row in ("cross-entropy", "MSE on probabilities", "focal loss, γ=2"):
        assert row in done.out
    assert "epochs to 90% train accuracy" in done.out
    assert_real_png(out, min_width=800)


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:  # noqa: SLF001 - argparse keeps its sub-parsers there
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in dict.fromkeys(action.choices.values()):
                found += _parsers(sub)
    return found


@pytest.mark.parametrize("parser", _parsers(build_parser()), ids=lambda p: p.prog)
def test_help_describes_every_option(parser: argparse.ArgumentParser, run_cli) -> None:  # noqa: ANN001
    argv = parser.prog.split()[1:]
    done = run_cli(*argv, "--help")
    assert done.code == 0
    assert parser.description or parser.prog == "losskit explain"
    for action in parser._actions:  # noqa: SLF001
        assert action.help and action.help != argparse.SUPPRESS, f"{parser.prog}: {action.dest} has no help"
        for flag in action.option_strings:
            assert flag in done.out


@pytest.mark.parametrize("loss", explainable())
def test_explain_and_check_offer_every_option_of_the_loss(loss: str) -> None:
    parsers = {p.prog: p for p in _parsers(build_parser())}
    for command in ("explain", "check"):
        help_text = parsers[f"losskit {command} {loss}"].format_help()
        for parameter in inspect.signature(getattr(lk, loss)).parameters.values():
            if parameter.kind is parameter.KEYWORD_ONLY and parameter.name not in ("size_average", "reduce"):
                assert "--" + parameter.name.rstrip("_").replace("_", "-") in help_text, (command, loss, parameter.name)
        if "centers" in inspect.signature(getattr(lk, loss)).parameters:
            assert "--centers" in help_text


ERRORS = [
    ("explain", "cross_entropy", "--input", "[[1, 2], [3]]", "--target", "[0, 1]"),  # ragged
    ("explain", "cross_entropy", "--input", "[[1, 2]", "--target", "[0]"),  # malformed
    ("explain", "cross_entropy", "--input", '[["a", "b"]]', "--target", "[0]"),  # not numbers
    ("explain", "cross_entropy", "--input", "missing.npy", "--target", "[0]"),
    ("explain", "crossentropy", "--input", "[[1, 2]]", "--target", "[0]"),  # unknown loss
    ("check", "arcface", "--input", "[[1, 2]]", "--target", "[0]"),
    # calls the loss refuses, which diagnose alone let through
    ("check", "cross_entropy", "--input", "[[1.0, 2.0, 0.5]]", "--target", "[5]"),
    ("check", "cross_entropy", "--input", "[[1.0, 2.0, 0.5]]", "--target", "[0, 1]"),
    ("check", "cross_entropy", "--input", "[[1.0, 2.0, 0.5]]", "--target", "[0]", "--label-smoothing", "-0.5"),
    ("check", "cross_entropy", "--input", "[[1.0, 2.0, 0.5]]", "--target", "[0]", "--dim", "5"),
    ("check", "huber_loss", "--input", "[1.0]", "--target", "[2.0]", "--delta", "-1"),
    ("check", "arcface_loss", "--input", "[[1.0, 0.0]]", "--centers", "[[1.0, 0.0, 0.0]]", "--target", "[0]"),
    # no number or no class: the losses have nothing to reduce or divide by C = 0
    *(
        ("explain" if c == "e" else "check", loss, "--input", x, *(() if loss == "softmax_entropy" else ("--target", t)), *more)
        for c in "ec"
        for loss, x, t, more in [
            ("cross_entropy", "[]", "[]", ()),
            ("cross_entropy", "[]", "[]", ("--label-smoothing", "0.2")),
            ("cross_entropy", "[[]]", "[0]", ()),
            ("nll_loss", "[]", "[]", ()),
            ("focal_loss", "[]", "[]", ()),
            ("kl_div", "[]", "[]", ()),
            ("softmax_entropy", "[]", "", ()),
        ]
    ),
    ("explain", "cross_entropy", "--input", "[[1, 2]]", "--target", "[0]", "--gamma", "2"),  # wrong option
    ("explain", "mse_loss", "--input", "[1, 2]", "--target", "[1, 2]", "--label-smoothing", "0.1"),
    ("explain", "cross_entropy", "--input", "[[1, 2]]", "--target", "[0]", "--reduction", "avg"),
    ("explain", "cross_entropy", "--input", "[[1, 2]]"),  # no target
    ("explain", "mse_loss", "--input", "[1, 2, 3]", "--target", "[1, 2]"),  # shapes losskit refuses
    ("explain", "cross_entropy", "--input", "[[1, 2]]", "--target", "[5]"),  # class index out of range
    ("explain", "cross_entropy", "--input", "[[0.5, 0.5]]", "--target", "[[0, 1]]"),  # one-hot target
    ("explain", "binary_cross_entropy", "--input", "[2.0, -1.0]", "--target", "[1, 0]"),  # logits
    ("explain", "focal_loss", "--input", "[[1, 2]]", "--target", "[0]", "--gamma", "-1"),
    ("explain", "l1_loss", "--input", "[1, 2]", "--target", "[1, 2]", "--weight", "[1, 2, 3]"),
    ("explain", "cross_entropy", "--input", "[[1, 2]]", "--centers", "[[1, 0]]", "--target", "[0]"),  # not a margin loss
    ("check", "arcface_loss", "--input", "[[1, 2]]", "--target", "[0]"),  # no centres
    ("explain", "cosface_loss", "--input", "[[1, 2]]", "--centers", "[[1, 0, 0]]", "--target", "[0]"),  # D differs
    ("explain", "sphereface_loss", "--input", "[[1, 2]]", "--centers", "[[1, 0]]", "--target", "[0]", "--margin", "1.5"),
    ("plot", "arcface_loss", "--fallback", "hard", "--out", "x.png"),
    ("plot", "sphereface_loss", "--lambda", "-1", "--out", "x.png"),
    ("plot", "cross_entropy", "--out", "/nonexistent/folder/x.png"),
    ("plot", "cross_entropy", "--out", "x.jpg"),
    ("plot", "margin", "--out", "x.png"),
    ("plot", "focal_loss", "--gamma", "-2", "--out", "x.png"),
    ("demo", "wine", "--epochs", "0"),
    ("demo", "wine", "--seed", "-1"),  # scikit-learn's split takes seeds in [0, 2**32)
    ("demo", "wine", "--seed", str(2**32)),
    ("demo", "wine", "--accuracy", "1.5"),  # a fraction
    ("demo", "wine", "--learning-rate", "inf"),
    ("explain", "mse_loss", "--input", "[" * 5000 + "1" + "]" * 5000, "--target", "[1]"),  # JSON recursion
    ("explain", "mse_loss", "--input", "[" * 100 + "1" + "]" * 100, "--target", "[1]"),  # NumPy's 64 dimensions
    ("demo", "wine", "--epochs", "2", "--out", "curves.svgx"),  # a format other than PNG
    ("demo", "wine", "--epochs", "2", "--out", "figs/w6"),  # matplotlib would write figs/w6.png
    ("explain", "cross_entropy", "--input", "empty.npy", "--target", "[1]"),  # an empty file
    ("demo", "mnist"),
    ("tour", "--bogus"),
    ("frobnicate",),
]


@pytest.mark.parametrize("argv", ERRORS, ids=lambda a: " ".join(a)[:60])
def test_user_errors_are_one_line_with_status_2(run_cli, argv, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.npy").touch()
    done = run_cli(*argv)
    assert done.code == 2
    assert done.out == ""
    lines = done.err.strip().splitlines()
    assert len(lines) == 1, done.err
    assert "error:" in lines[0] and "Traceback" not in done.err


def test_user_errors_name_what_was_expected_and_given(run_cli, tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "empty.npy").touch()
    cases = {
        ("explain", "cross_entropy", "--input", "[[]]", "--target", "[0]"): "--input must hold at least one number, got an array of shape (1, 0)",
        ("explain", "cross_entropy", "--input", str(tmp_path / "empty.npy"), "--target", "[1]"): "empty.npy is not a .npy file of numbers",
        ("demo", "wine", "--out", "figs/w6"): "--out must name a .png file, got figs/w6",
        ("demo", "wine", "--seed", "-1"): "argument --seed: must be in [0, 2**32), got -1",
        ("explain", "mse_loss", "--input", "[" * 100 + "1" + "]" * 100, "--target", "[1]"): "has more than 64 dimensions",
        ("explain", "mse_loss", "--input", "[" * 5000 + "1" + "]" * 5000, "--target", "[1]"): "is nested too deeply",
        ("check", "cross_entropy", "--input", "[[1.0, 2.0, 0.5]]", "--target", "[5]"): "target contains class index 5, but input has 3 classes",
    }
    for argv, message in cases.items():
        done = run_cli(*argv)
        assert done.code == 2 and message in done.err, (argv, done.err)


def test_losskit_errors_carry_the_diagnosis(run_cli) -> None:  # noqa: ANN001
    done = run_cli("explain", "binary_cross_entropy", "--input", "[2.0, -1.0]", "--target", "[1, 0]")
    assert done.err.startswith("losskit explain binary_cross_entropy: error: binary_cross_entropy: input must")
    assert "[logits-as-probabilities:" in done.err


def test_python_dash_m_without_the_cli_extra_still_tours(tmp_path: Path) -> None:
    block = "import sys; sys.modules['rich'] = None; from losskit.cli import main; raise SystemExit(main({}))"
    tour = subprocess.run([sys.executable, "-c", block.format("[]")], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert tour.returncode == 0, tour.stderr
    assert "Wrong claims in the tutorials: #2, #5, #7" in tour.stdout
    assert "pip install 'losskit[cli]'" in tour.stdout
    plot = subprocess.run([sys.executable, "-c", block.format("['plot', 'l1_loss', '--out', 'x.png']")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert plot.returncode == 2
    assert plot.stderr.strip() == "losskit plot: error: needs rich: pip install 'losskit[cli]' scikit-learn"


def test_the_core_imports_no_cli_dependency() -> None:
    code = "import losskit, sys; print(sorted(m for m in ('rich', 'matplotlib', 'sklearn', 'torch', 'jax') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
