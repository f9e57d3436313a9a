"""Routing: what the HTTP dispatch needs of the profiles it routes requests to.

A :class:`~httpx_resilience.Registry` is one. :class:`~._exchange.Dispatch` depends on this
interface, not on the profiles package, so that the HTTP building blocks (which the profiles
build caches and alternates from) sit below the profiles and never import them; only the
client and the transport, above both, turn a TOML path into a registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import httpx

    from ..pipeline import Pipeline

__all__ = ["Routing"]


class Routing(Protocol):
    """Named pipelines, and which one a request runs through."""

    def profile(self, name: str) -> object:
        """The profile registered as ``name``; raises ``ConfigError`` for an unknown name."""
        ...

    def get(self, name: str) -> Pipeline:
        """The pipeline of profile ``name``."""
        ...

    def route(self, request: httpx.Request, routes: Sequence[tuple[str, str]] = ()) -> str:
        """The profile ``request`` runs under (``routes`` tried first)."""
        ...

    def retry_non_idempotent(self, name: str) -> bool:
        """Whether profile ``name`` retries POST and PATCH without an ``Idempotency-Key``."""
        ...

    async def aclose(self) -> None:
        """Release what the pipelines hold."""
        ...
