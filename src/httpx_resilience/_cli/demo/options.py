"""What the demo runs: :class:`DemoOptions`, and the names of the two clients it compares."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import httpx

from ...http.client import ResilientClient

__all__ = ["DEFAULT_SEED", "PLAIN_NAME", "RESILIENT_NAME", "DemoOptions"]

DEFAULT_SEED = 7
PLAIN_NAME = "httpx.AsyncClient"
RESILIENT_NAME = "ResilientClient"


@dataclass(frozen=True)
class DemoOptions:
    """What to run.

    Attributes:
        scenario: A key of :data:`SCENARIOS`.
        duration: Seconds of load (and the length of the scenario's timeline).
        users: Concurrent virtual users per client.
        seed: Seed of the upstreams' randomness.
        requests: Calls per client; when set, each client stops after that many instead of
            after ``duration``.
        interval: Seconds between the starts of one user's calls (a user whose call took
            longer starts the next one at once).
        plain: Plain-text output even when rich is installed.
        httpx2: Both clients on httpx2 (``httpx2.AsyncClient`` and
            ``httpx_resilience.httpx2.ResilientClient``) rather than httpx.
    """

    scenario: str = "flaky"
    duration: float = 8.0
    users: int = 20
    seed: int = DEFAULT_SEED
    requests: int | None = None
    interval: float = 0.1
    plain: bool = False
    httpx2: bool = False

    @property
    def offered_rate(self) -> float:
        """Calls per second each client is asked to make when every call is fast."""
        return self.users / self.interval

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        """The options of a parsed ``demo`` command line."""
        return cls(
            scenario=args.scenario,
            duration=args.duration,
            users=args.users,
            seed=args.seed,
            requests=args.requests,
            plain=args.plain,
            httpx2=args.httpx2,
        )

    def client_classes(self) -> tuple[Any, Any]:
        """The plain client class and the resilient one: httpx's, or with ``httpx2`` httpx2's."""
        if not self.httpx2:
            return httpx.AsyncClient, ResilientClient
        try:
            import httpx2

            from ... import httpx2 as layer
        except ImportError:
            raise SystemExit(
                "--httpx2 needs httpx2: pip install 'httpx-resilience[httpx2]' (Python >= 3.11)"
            ) from None
        return httpx2.AsyncClient, layer.ResilientClient
