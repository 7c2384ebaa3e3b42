"""The loss registry: every public loss has a complete entry whose facts the rest of losskit
can use, and the public wrapper it makes (one graph under torch.compile, quiet NumPy
warnings)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _cases import CASES
from _references import REFERENCES
from _support import BACKENDS, assert_close

import losskit as lk
from losskit._lib._registry import Curve, Entry, Equivalents, Module, entries, loss
from losskit._misuse import RULES
from losskit.cli._curves import _KINDS, _SETTINGS
from losskit.cli._explain import EXPLAINERS
from losskit.torch import nn as lknn

DOCS = Path(__file__).parents[2] / "docs"
# The public functions that are not losses and need no entry.
HELPERS = {"diagnose", "set_checks", "sphereface_lambda", "value_and_grad"}
# Tested on a grid of their own (tests/test_margin.py, against pytorch-metric-learning).
OWN_GRID = {"margin"}


def registry_problems(found: Iterable[Entry], public: dict[str, object]) -> list[str]:
    """What is wrong with the registry ``found`` for the public names ``public`` of losskit."""
    registered = {e.name: e for e in found}
    problems = [
        f"{name} is public but has no registry entry"
        for name, value in public.items()
        if inspect.isfunction(value) and name not in HELPERS and name not in registered
    ]
    for e in registered.values():
        options = e.options()
        facts = {"docs": e.docs}
        if e.is_loss:
            facts |= {"equivalents": e.equivalents, "module": e.module, "curve": e.curve, "explainer": e.explainer}
        problems += [f"{e.name}: no {fact}" for fact, value in facts.items() if value is None]
        if public.get(e.name) is not e.function:
            problems.append(f"{e.name}: not exported as losskit.{e.name}")
        if not set(e.arrays) <= set(e.signature.parameters) or not all(k < len(e.arrays) for k in e.argnums):
            problems.append(f"{e.name}: arrays {e.arrays} and argnums {e.argnums} do not fit its signature")
        problems += [f"{e.name}: no misuse rule {r!r}" for r in e.diagnostics if r not in RULES]
        if e.docs is not None and not (DOCS / e.docs).is_file():
            problems.append(f"{e.name}: no page docs/{e.docs}")
        if e.explainer is not None and e.explainer not in EXPLAINERS:
            problems.append(f"{e.name}: no explainer {e.explainer!r}")
        if e.curve is not None:
            if e.curve.kind not in _KINDS:
                problems.append(f"{e.name}: no kind of curve {e.curve.kind!r}")
            problems += [f"{e.name}: a curve varies {o!r}, not a plot setting of its options" for o in e.curve.vary
                         if o not in _SETTINGS or o not in options]  # fmt: skip
        if e.module is not None:
            problems += [f"{e.name}: its module takes {o!r} by position, not an option" for o in e.module.positional
                         if o not in options and o not in ("size_average", "reduce")]  # fmt: skip
            if e.module.drop_in and not hasattr(torch.nn, e.module.name):
                problems.append(f"{e.name}: torch.nn has no {e.module.name} to be a drop-in for")
    return problems


def test_every_public_loss_has_a_complete_entry() -> None:
    public = {name: getattr(lk, name) for name in lk.__all__}
    assert registry_problems(entries(), public) == []
    assert len({e.module.name for e in entries() if e.module is not None}) == sum(e.is_loss for e in entries())


def test_the_registry_test_finds_a_planted_gap() -> None:
    public = {name: getattr(lk, name) for name in lk.__all__}
    cross_entropy = next(e for e in entries() if e.name == "cross_entropy")
    incomplete = dataclasses.replace(cross_entropy, docs=None, module=None)
    assert registry_problems([e for e in entries() if e is not cross_entropy] + [incomplete], public) == [
        "cross_entropy: no docs",
        "cross_entropy: no module",
    ]
    missing = [e for e in entries() if e is not cross_entropy]
    assert registry_problems(missing, public) == ["cross_entropy is public but has no registry entry"]
    wrong = dataclasses.replace(
        cross_entropy,
        diagnostics=("softmax_twice",),
        curve=Curve("softmax", vary=("gamma",)),
        module=Module("CrossEntropyLoss", ("weight", "epsilon"), drop_in=True),
    )
    assert registry_problems([e for e in entries() if e is not cross_entropy] + [wrong], public) == [
        "cross_entropy: no misuse rule 'softmax_twice'",
        "cross_entropy: a curve varies 'gamma', not a plot setting of its options",
        "cross_entropy: its module takes 'epsilon' by position, not an option",
    ]


def test_a_second_loss_of_a_name_or_an_option_without_annotation_is_refused() -> None:
    facts = {
        "family": "toy", "module": Module("ToyLoss"), "curve": Curve("error"), "docs": "losses/toy.md",
        "equivalents": Equivalents(pytorch="none", optax="none", keras="none"),
    }  # fmt: skip

    def cross_entropy(input: object, target: object, *, vjp: object = None) -> object:
        return None

    with pytest.raises(ValueError, match="^cross_entropy: a loss of this name is registered already"):
        loss(**facts)(cross_entropy)
    namespace: dict = {}
    source = "def toy_loss(input, target, *, reduction: str = 'mean', vjp=None):\n    pass"
    exec(compile(source, "toy", "exec", dont_inherit=True), namespace)  # noqa: S102 (no __future__ here)
    with pytest.raises(TypeError, match="^toy_loss: every option needs an annotation, read as text"):
        loss(**facts)(namespace["toy_loss"])
    assert "toy_loss" not in {e.name for e in entries()}


def test_every_loss_has_its_module_and_the_grid_its_cases() -> None:
    for e in entries():
        if e.module is not None:
            assert getattr(lknn, e.module.name).entry is e
    gridded = {e.name for e in entries() if e.family not in OWN_GRID}
    assert set(CASES) == set(REFERENCES) == gridded


@pytest.mark.parametrize(
    ("ours", "theirs", "target"),
    [
        (lk.cross_entropy, F.cross_entropy, torch.tensor([0, 2, 1, -100, 2])),
        (lk.mse_loss, F.mse_loss, torch.linspace(-1, 1, 15, dtype=torch.float64).reshape(5, 3)),
    ],
    ids=["cross_entropy", "mse_loss"],
)
@pytest.mark.parametrize("by_keyword", [False, True], ids=["positional", "keywords"])
def test_torch_compile_traces_a_loss_in_one_graph(ours: object, theirs: object, target: torch.Tensor, by_keyword: bool) -> None:
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)

    def call(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (ours(input=a, target=b) if by_keyword else ours(a, b)) * 2  # type: ignore[operator]

    compiled = torch.compile(call, backend="aot_eager", fullgraph=True)
    value = compiled(x, target)
    (grad,) = torch.autograd.grad(value, x)
    expected = theirs(x, target) * 2  # type: ignore[operator]
    assert_close(value.detach(), expected.detach(), rtol=1e-12)
    assert_close(grad, torch.autograd.grad(expected, x)[0], rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_numpy_floating_point_warnings_stay_silenced(backend: str) -> None:
    # pytest turns warnings into errors: log(0) must pass quietly on NumPy and what wraps it.
    b = BACKENDS[backend]
    out = lk.binary_cross_entropy(b.asarray(np.array([0.0])), b.asarray(np.array([1.0])))
    assert float(b.to_numpy(out)) == 100.0


# A loss added the way CONTRIBUTING.md says, its function and entry and nothing else, in a
# process of its own: every layer that concerns all losses takes it up.
NEW_LOSS = '''
from __future__ import annotations

import json, sys, tempfile, pathlib
import numpy as np, torch
import losskit as lk
from losskit._lib._compat import namespace
from losskit._lib._reduction import resolve_reduction
from losskit._lib._registry import Curve, Equivalents, Module, loss
from losskit._lib._validation import paired_floats
from losskit._lib._vjp import finish, weigh_and_reduce
from losskit._lib._compat import Array
# Imported before the loss is registered: they read the registry when they are used.
import losskit.torch.nn as lknn
from losskit.cli import main
from losskit.cli._curves import PlotSettings, curves


@loss(
    family="regression",
    argnums=(0, 1),
    module=Module("HalfMSELoss", ("reduction",)),
    equivalents=Equivalents(pytorch="`0.5 * F.mse_loss(x, y)`", optax="`optax.l2_loss(x, y).mean()`", keras="none"),
    curve=Curve("error"),
    docs="losses/half_mse.md",
)
def half_mse_loss(input: Array, target: Array, *, reduction: str = "mean", vjp=None):
    """Half the squared error.

    Parameters
    ----------
    input : array
        Predictions.
    target : array
        Targets.
    reduction : {"mean", "sum", "none"}, default "mean"
        The reduction.
    """
    fn = "half_mse_loss"
    xp = namespace(fn, input=input, target=target)
    reduction = resolve_reduction(fn, reduction)
    x, y, out_dtype = paired_floats(fn, input, target, xp)
    z = x - y
    value, u = weigh_and_reduce(fn, 0.5 * z * z, None, reduction, vjp, xp)
    return finish(xp, value, out_dtype, vjp, {} if u is None else {0: u * z, 1: -u * z}, (input, target))


found = {}
value, grad = lk.value_and_grad(half_mse_loss)(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
found["value_and_grad"] = [float(value), grad.tolist()]
found["module"] = float(lknn.HalfMSELoss("sum")(torch.tensor([1.0, 3.0]), torch.zeros(2)))
found["diagnose"] = lk.diagnose("half_mse_loss", np.ones(2), np.zeros(2))
(curve,) = curves()["half_mse_loss"](PlotSettings())
found["curve"] = curve.label
found["check"] = main(["check", "half_mse_loss", "--input", "[1, 3]", "--target", "[0, 0]", "--reduction", "sum"])
png = pathlib.Path(tempfile.mkdtemp()) / "half.png"
found["plot"] = main(["plot", "half_mse_loss", "--out", str(png)])
sys.path.insert(0, sys.argv[1])
import hooks
import yaml
nav = yaml.safe_load((pathlib.Path(sys.argv[1]).parent / "mkdocs.yml").read_text())["nav"]
before = json.loads(json.dumps(nav))
config = hooks.on_config({"nav": nav})
found["nav"] = [before, config["nav"]]
found["page"] = hooks.render("## `half_mse_loss`\\n\\n::: losskit.half_mse_loss\\n", config["nav"])
print(json.dumps(found))
'''


def test_a_new_loss_reaches_every_layer_through_its_entry(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    script = tmp_path / "new_loss.py"
    script.write_text(NEW_LOSS)
    done = subprocess.run([sys.executable, str(script), str(DOCS)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    *printed, last = done.stdout.strip().splitlines()
    found = json.loads(last)
    assert found["value_and_grad"] == [2.5, [0.5, 1.5]]
    assert found["module"] == 5.0
    assert found["diagnose"] == []
    assert found["curve"] == "half_mse_loss"
    assert (found["check"], found["plot"]) == (0, 0)
    assert "half_mse_loss: no problems found" in printed
    before, after = found["nav"]  # the page of the new loss joins the Losses section, at its end
    (losses,) = [item["Losses"] for item in before if "Losses" in item]
    assert after == [{"Losses": [*losses, "losses/half_mse.md"]} if "Losses" in item else item for item in before]
    assert "| optax | `optax.l2_loss(x, y).mean()` |" in found["page"]
