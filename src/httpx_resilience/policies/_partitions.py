"""Per-key state for partitioned policies, in a bounded cache.

A policy built with ``key=`` keeps one state (a breaker circuit, a bulkhead, a bucket) per
partition name. The states live in a :class:`cachetools.LRUCache` of ``max_partitions`` entries,
so a flood of distinct keys (one per user, say) cannot grow memory without bound. A state that
falls out of the cache while calls still hold it is not lost: it stays reachable through a weak
reference until the last call lets go, and comes back into the cache if its key is seen again.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import cachetools

from ._validate import at_least

S = TypeVar("S")

#: Default bound on the number of partitions a policy keeps.
DEFAULT_MAX_PARTITIONS = 10_000


class Partitions(Generic[S]):
    """States by partition key, at most ``max_partitions`` of them cached."""

    __slots__ = ("_alive", "_cache", "_factory")

    def __init__(self, owner: str, factory: Callable[[str], S], max_partitions: int) -> None:
        at_least(owner, "max_partitions", max_partitions, 1)
        self._factory = factory
        self._cache: cachetools.LRUCache[str, S] = cachetools.LRUCache(max_partitions)
        self._alive: weakref.WeakValueDictionary[str, S] = weakref.WeakValueDictionary()

    @property
    def max_partitions(self) -> int:
        """The most partitions kept in the cache."""
        return int(self._cache.maxsize)

    def get(self, key: str) -> S:
        """The state of ``key``, created if it has none."""
        try:
            return self._cache[key]
        except KeyError:
            pass
        state = self._alive.get(key)
        if state is None:
            state = self._factory(key)
            self._alive[key] = state
        self._cache[key] = state
        return state

    def peek(self, key: str) -> S | None:
        """The state of ``key`` if it has one, without creating it."""
        state = self._cache.get(key)
        return state if state is not None else self._alive.get(key)

    def __len__(self) -> int:
        return len(self._cache)

    def items(self) -> Iterator[tuple[str, S]]:
        """The cached partitions, least recently used first."""
        return iter(list(self._cache.items()))
