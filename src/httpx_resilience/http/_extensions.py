"""Per-request control through httpx's ``extensions=``, as Polly's per-request
``ResilienceContext`` properties: on any client or transport, without a profile.

- ``{"resilience.timeout": 5.0}``: the whole exchange, retries and waits included, must end
  within 5 seconds (a total timeout around the pipeline, on the clock of its policies), else
  :class:`~httpx_resilience.TimeoutRejected` (an :class:`httpx.TimeoutException` too);
- ``{"resilience.retry": False}``: this request is sent once, never retried nor hedged;
  ``True``: it may be retried even if its method is not idempotent (a POST the caller knows to
  be safe to repeat), as ``retry_non_idempotent=True`` for this one request.

A value of the wrong type or out of range is an error before anything is sent.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from .._clock import SYSTEM_CLOCK, Clock
from ..pipeline import Pipeline
from ..policies.timeout import Timeout

__all__ = ["RETRY", "TIMEOUT", "requested_retry", "requested_timeout"]

#: The extension naming a total timeout for the request, in seconds.
TIMEOUT = "resilience.timeout"
#: The extension turning retries off (``False``) or on for a non-idempotent method (``True``).
RETRY = "resilience.retry"


def requested_retry(request: httpx.Request) -> bool | None:
    """The request's ``resilience.retry`` extension, if it has one."""
    value: Any = request.extensions.get(RETRY)
    if value is None or isinstance(value, bool):
        return value
    raise TypeError(f"extensions[{RETRY!r}] must be True or False, got {value!r}")


def requested_timeout(request: httpx.Request, pipeline: Pipeline) -> Timeout | None:
    """The request's ``resilience.timeout`` extension as a timeout policy to run the pipeline
    in, timed on the clock of the pipeline's policies (so that the deadline it sets is one they
    can compare with), if it has one."""
    value: Any = request.extensions.get(TIMEOUT)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"extensions[{TIMEOUT!r}] must be a number of seconds, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"extensions[{TIMEOUT!r}] must be a positive, finite number of seconds, got {value!r}"
        )
    return Timeout(value, clock=_clock_of(pipeline))


def _clock_of(pipeline: Pipeline) -> Clock:
    """The clock the pipeline's policies keep time with (the system clock if none says)."""
    for policy in pipeline.policies:
        clock = getattr(policy, "_clock", None)
        if clock is not None:
            return clock  # type: ignore[no-any-return]
    return SYSTEM_CLOCK
