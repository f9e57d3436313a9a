"""The package's pytest plugin: a ``fake_clock`` fixture for users' own tests.

Registered through the ``pytest11`` entry point, so installing the package is enough::

    async def test_retries_back_off(fake_clock):
        pipeline = Pipeline.builder(clock=fake_clock).retry(...).build()
        ...
        assert fake_clock.monotonic() == 1.5
"""

from __future__ import annotations

import pytest

from .testing import FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fresh :class:`~httpx_resilience.testing.FakeClock` at 0, jumping ahead on sleeps."""
    return FakeClock()
