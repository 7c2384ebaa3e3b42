"""``losskit completion bash|zsh``: the script offers what the parser takes, run in a real bash."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def _complete(script: Path, *words: str) -> list[str]:
    """What bash's completion of ``losskit WORDS...`` (the last word being typed) offers."""
    line = " ".join(f"'{w}'" for w in ("losskit", *words))
    probe = (
        f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; "
        f"_losskit losskit '{words[-1]}' '{(('losskit', *words))[-2]}'; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.fixture
def bash_script(run_cli, tmp_path: Path) -> Path:  # noqa: ANN001
    done = run_cli("completion", "bash")
    assert (done.code, done.err) == (0, "")
    path = tmp_path / "losskit.bash"
    path.write_text(done.out)
    return path


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("words", "offered"),
    [
        (("",), ["check", "completion", "demo", "explain", "plot", "tour", "--help", "--version"]),
        (("ex",), ["explain"]),
        (("explain", "cross_en"), ["cross_entropy"]),
        (("check", "cross_entropy", "--r"), ["--reduction"]),
        (("explain", "cross_entropy", "--reduction", ""), ["none", "mean", "sum"]),
        (("check", "kl_div", "--reduction", "b"), ["batchmean"]),
        (("check", "cross_entropy", "--input", "[[1]]", "--la"), ["--label-smoothing"]),
        (("explain", "cross_entropy", "--dim", ""), []),  # a number: nothing to offer
        (("plot", "arc"), ["arcface_loss"]),
        (("plot", "arcface_loss", "--fallback", "e"), ["easy"]),
        (("plot", "l1_loss", "--g"), ["--gamma"]),
        (("demo", ""), ["wine", "--help"]),
        (("demo", "wine", "--s"), ["--seed"]),
        (("completion", ""), ["bash", "zsh", "--help"]),
    ],
)
def test_bash_completes_commands_losses_options_and_choices(bash_script: Path, words: tuple[str, ...], offered: list[str]) -> None:
    assert sorted(_complete(bash_script, *words)) == sorted(offered)


def test_the_zsh_script_runs_the_same_completion_through_bashcompinit(run_cli) -> None:  # noqa: ANN001
    bash, zsh = run_cli("completion", "bash").out, run_cli("completion", "zsh")
    assert zsh.code == 0
    assert "autoload -U +X bashcompinit && bashcompinit" in zsh.out
    assert zsh.out.endswith(bash.split("\n", 1)[1])  # the bash script after its first comment line


def test_completion_needs_a_known_shell(run_cli) -> None:  # noqa: ANN001
    done = run_cli("completion", "fish")
    assert done.code == 2 and "argument SHELL: invalid choice: 'fish'" in done.err
