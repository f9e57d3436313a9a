"""Every test of the HTTP layer runs on httpx and on httpx2 (see tests/flavours.py)."""

from __future__ import annotations

import pytest

from ..flavours import Flavour, switch_test_modules


@pytest.fixture(autouse=True)
def _on_flavour(flavour: Flavour, monkeypatch: pytest.MonkeyPatch) -> None:
    switch_test_modules(flavour, monkeypatch)
