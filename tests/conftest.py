"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest

from losskit._lib import _torch_kernels


@pytest.fixture(params=["kernels", "rules"])
def torch_route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a PyTorch test twice: with the calls a PyTorch kernel serves going to it (small
    calls of cross-entropy, for one), and with every call through losskit's own rule, as a
    call larger than a kernel's ``up_to`` runs."""
    if request.param == "rules":
        monkeypatch.setattr(_torch_kernels, "call", lambda *args: None)
    return request.param
