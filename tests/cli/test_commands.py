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
from matplotlib.figure import Figure

import losskit as lk
from losskit.cli import build_parser, main
from losskit.cli._commands import TOUR_FIGURES
from losskit.cli._curves import AXES, PlotSettings, curves
from losskit.cli._explain import explainable
from losskit.cli._inputs import read_array
from losskit.cli._plot import plot_losses

ROOT = Path(__file__).parents[2]


def test_tour_is_the_default_and_names_the_wrong_claims_with_what_their_calls_return(run_cli, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    done = run_cli()
    elapsed = time.perf_counter() - start
    assert done.code == 0, done.err
    assert elapsed < 30, f"the tour took {elapsed:.1f} s"
    out = done.out
    assert "Wrong claims in the tutorials: #2, #5, #7" in out
    assert "#2 nll_loss(softmax(x), target=[1, 0, 4]) returns -0.386140, not the tutorial's 1.3537" in out
    assert "#5 l1_loss(y_pred, y_true) returns 0.350000, not the tutorial's 1.4" in out
    assert "#7 cross_entropy(x, target=[1]) returns 0.853287, not the tutorial's 0.51" in out
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


def _refusal(loss: str, x: object, target: object, **options: object) -> str:
    """The loss's own one-line refusal of a call."""
    with pytest.raises(ValueError) as refused:
        getattr(lk, loss)(np.asarray(x, dtype=float), np.asarray(target), **options)
    return " ".join(str(refused.value).split())


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_check_exits_1_for_a_finding_and_2_for_a_call_the_loss_refuses(run_cli, json_flag) -> None:  # noqa: ANN001
    # a class index out of range and a one-hot target: both refused by the loss, both status 2
    out_of_range = run_cli("check", "cross_entropy", "--input", "[[1.0, 2.0, 0.5]]", "--target", "[5]", *json_flag)
    one_hot = run_cli("check", "cross_entropy", "--input", "[[1.0, 2.0, 0.5]]", "--target", "[[0, 1, 0]]", *json_flag)
    assert (out_of_range.code, one_hot.code) == (2, 2)
    prog = "losskit check cross_entropy: error: "
    assert out_of_range.err == prog + _refusal("cross_entropy", [[1.0, 2.0, 0.5]], [5]) + "\n"
    assert one_hot.err == prog + _refusal("cross_entropy", [[1.0, 2.0, 0.5]], [[0, 1, 0]]) + "\n"
    # the findings come first, on stdout: none for the class index, the one that says why for one-hot
    assert out_of_range.out == "" and "one-hot-target" in one_hot.out
    # probabilities where logits belong: the loss computes the call, a finding gives status 1
    finding = run_cli("check", "cross_entropy", "--input", "[[0.2, 0.8]]", "--target", "[1]", *json_flag)
    assert finding.code == 1 and "probabilities-as-logits" in finding.out and finding.err == ""


def test_the_exit_statuses_are_documented_in_the_help(run_cli) -> None:  # noqa: ANN001
    for argv in (("--help",), ("check", "--help")):
        shown = " ".join(run_cli(*argv).out.split())
        assert ("Exit status 0 on success (for check: when nothing is found), 1 when check finds a problem in a call "
                "the loss computes, 2 for invalid input: a malformed command line or a call the loss refuses, "
                "reported in one line on stderr") in shown, argv


def test_a_refusal_carries_only_the_fixes_that_make_the_loss_take_the_call(run_cli) -> None:  # noqa: ANN001
    # label_smoothing out of range: that the rows look like probabilities does not explain it
    done = run_cli("explain", "cross_entropy", "--input", "[[0.2, 0.8]]", "--target", "[1]", "--label-smoothing", "2")
    refusal = _refusal("cross_entropy", [[0.2, 0.8]], [1], label_smoothing=2.0)
    assert (done.code, done.out, done.err) == (2, "", f"losskit explain cross_entropy: error: {refusal}\n")
    checked = run_cli("check", "cross_entropy", "--input", "[[0.2, 0.8]]", "--target", "[1]", "--label-smoothing", "2")
    assert (checked.code, checked.err) == (2, f"losskit check cross_entropy: error: {refusal}\n")
    assert "probabilities-as-logits" in checked.out  # check still lists what it finds


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
    # calls the loss refuses (status 2), with the findings that say why
    done = run_cli("check", "arcface_loss", "--input", x, "--centers", w, "--target", "[0, 2]", "--margin", "28.6", "--json")
    assert done.code == 2
    (finding,) = json.loads(done.out)
    assert finding["code"] == "margin-in-degrees"
    assert "math.radians(28.6)" in finding["fix"]
    transposed = run_cli("check", "cosface_loss", "--input", x, "--centers", "[[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]]", "--target", "[0, 2]")
    assert transposed.code == 2 and "centers-transposed" in transposed.out
    logits = run_cli("check", "binary_cross_entropy", "--input", "[2.0, -1.0]", "--target", "[1, 0]", "--json")
    (finding,) = json.loads(logits.out)
    assert (logits.code, finding["code"]) == (2, "logits-as-probabilities")
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
        ("demo", "wine", "--out", "figs/w6"): "argument --out: must be a .png file, got figs/w6",
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
    # losskit is installed from its folder, and the cli extra holds scikit-learn
    assert tour.stdout.endswith("""(pip install ".[cli]" in losskit's folder for the styled tour and its figures)\n""")
    plot = subprocess.run([sys.executable, "-c", block.format("['plot', 'l1_loss', '--out', 'x.png']")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert plot.returncode == 2
    assert plot.stderr == """losskit plot: error: needs rich, of the cli extra: pip install ".[cli]" in losskit's folder\n"""


def test_the_core_imports_no_cli_dependency() -> None:
    code = "import losskit, sys; print(sorted(m for m in ('rich', 'matplotlib', 'sklearn', 'torch', 'jax') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[-inf, inf, INF, +Infinity, -infinity, -Infinity, Infinity]", [-np.inf, np.inf, np.inf, np.inf, -np.inf, -np.inf, np.inf]),
        ("[nan, NaN, NAN, -nan]", [np.nan] * 4),
        ("[.5, -inf, nan]", [0.5, -np.inf, np.nan]),  # the Python-literal path as well as JSON's
    ],
)
def test_arrays_take_infinities_and_nan_in_any_case(text: str, expected: list[float]) -> None:
    np.testing.assert_array_equal(read_array(text), np.array(expected))


def test_explain_takes_minus_inf_as_float_options_do(run_cli) -> None:  # noqa: ANN001
    done = run_cli("explain", "cross_entropy", "--input", "[[1.0, -inf]]", "--target", "[0]", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["value"] == 0.0
    assert run_cli("explain", "huber_loss", "--input", "[1.0]", "--target", "[2.0]", "--delta", "INF").code == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("plot", "cross_entropy", "--out", "x.jpg"), "argument --out: must be a .png file, got x.jpg"),
        (("plot", "cross_entropy", "--out", "missing/x.png"), "argument --out: must be a .png file in an existing folder, got missing/x.png: there is no folder missing"),
        (("plot", "cross_entropy", "--out", "taken.png"), "argument --out: must be a .png file, got taken.png, a folder"),
        (("demo", "wine", "--out", "missing/w.png"), "argument --out: must be a .png file in an existing folder, got missing/w.png: there is no folder missing"),
    ],
)
def test_output_files_are_checked_when_the_command_line_is_read(argv, message, tmp_path, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(SystemExit) as parsed:  # before anything is computed or drawn
        build_parser().parse_args(list(argv))
    assert parsed.value.code == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.png"]


@pytest.mark.parametrize(("folder", "reason"), [("a-file/figures", "Not a directory"), ("a-file", "File exists"), ("/proc/nope", "")])
def test_tour_checks_its_figure_folder_before_printing_anything(run_cli, folder, reason, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").touch()
    done = run_cli("tour", "--out-dir", folder)
    assert (done.code, done.out) == (2, "")
    # /proc's reason depends on who asks (root or not)
    assert done.err.startswith(f"losskit tour: error: --out-dir: cannot create the folder {folder}: {reason}")
    assert len(done.err.splitlines()) == 1


def test_plot_refuses_an_option_that_none_of_its_losses_takes(run_cli, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "f.png"
    done = run_cli("plot", "cross_entropy", "--gamma", "2", "--out", str(out))
    assert (done.code, done.out) == (2, "")
    assert done.err == "losskit plot: error: --gamma is not an option of cross_entropy (cross_entropy takes no options)\n"
    two = run_cli("plot", "mse_on_probabilities", "huber_loss", "--beta", "0.5", "--lambda", "1", "--out", str(out))
    assert two.err == ("losskit plot: error: --beta is not an option of mse_on_probabilities or huber_loss "
                       "(mse_on_probabilities takes no options; huber_loss takes --delta)\n")
    assert not out.exists()
    # an option that one of the losses drawn takes is fine
    assert run_cli("plot", "cross_entropy", "sigmoid_focal_loss", "--gamma", "2", "--alpha", "0.5", "--out", str(out)).code == 0


def test_explain_names_the_options_the_loss_takes_when_given_another(run_cli) -> None:  # noqa: ANN001
    done = run_cli("explain", "cross_entropy", "--input", "[[1, 2]]", "--target", "[0]", "--gamma", "2")
    assert done.code == 2
    assert done.err.startswith("losskit explain cross_entropy: error: unrecognized arguments: --gamma 2 "
                               "(cross_entropy takes --weight, --ignore-index, --reduction, --label-smoothing, --dim)")


@pytest.mark.parametrize(
    ("argv", "given", "meant"),
    [
        (("explain", "cross_entropyy", "--input", "[[1, 2]]", "--target", "[0]"), "cross_entropyy", "cross_entropy"),
        (("check", "arcface", "--input", "[[1, 2]]", "--target", "[0]"), "arcface", "arcface_loss"),
        (("plot", "huber", "--out", "x.png"), "huber", "huber_loss"),
        (("cheek",), "cheek", "check"),
        (("explain", "cross_entropy", "--input", "[[1, 2]]", "--target", "[0]", "--reduction", "sun"), "sun", "sum"),
    ],
)
def test_a_misspelt_choice_gets_a_suggestion(run_cli, argv, given, meant) -> None:  # noqa: ANN001
    done = run_cli(*argv)
    assert done.code == 2
    assert f"invalid choice: {given!r}; did you mean {meant!r}? (choose from " in done.err


def test_long_commands_show_their_progress_on_stderr(run_cli, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    demo = run_cli("demo", "wine", "--epochs", "7", "--out", "w.png")
    assert demo.code == 0, demo.err
    for label in ("cross-entropy", "MSE on probabilities", "focal loss, γ=2"):
        assert re.search(rf"^training with {re.escape(label)} +━+ 100% 7/7 ", demo.err, re.M), demo.err
    tour = run_cli("tour")
    assert re.search(r"^writing the figures +━+ 100% 3/3 ", tour.err, re.M), tour.err


def _legend(names: list[str], settings: PlotSettings, path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    drawn: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, *args, **kwargs: drawn.append(figure))
    plot_losses(names, path, settings)
    (figure,) = drawn
    return [text.get_text() for ax in figure.axes if ax.get_legend() for text in ax.get_legend().get_texts()]


def test_a_curve_drawn_over_another_says_so_in_the_legend(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    # smooth L1 with beta = 1 is Huber with delta = 1: the tour's regression figure draws one over the other
    assert _legend(TOUR_FIGURES["regression.png"], PlotSettings(), tmp_path / "r.png", monkeypatch) == [
        "l1_loss", "mse_loss", "huber_loss, δ=1", "smooth_l1_loss, β=1 (the same curves as huber_loss, δ=1)"
    ]
    apart = _legend(["huber_loss", "smooth_l1_loss"], PlotSettings(beta=0.5), tmp_path / "r.png", monkeypatch)
    assert apart == ["huber_loss, δ=1", "smooth_l1_loss, β=0.5"]
