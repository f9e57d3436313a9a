"""Per-dependency named profiles: :class:`Profile`, :class:`Registry`, and loading them from TOML
or a mapping.

A service talks to payments, search and a dozen internal services; each needs its own timeouts,
limits and breaker, tuned in one place. A :class:`Profile` describes one pipeline declaratively;
a :class:`Registry` holds profiles by name and builds each into one shared
:class:`~httpx_resilience.Pipeline`, so every caller of "payments" shares its breaker, bulkhead
and buckets.

The file format (the same shape as a mapping)::

    [profiles.default]
    total_timeout = 30.0
    attempt_timeout = 10.0
    retry = { max_attempts = 3, base_delay = 0.2, max_delay = 10.0, budget = { ratio = 0.2 } }
    circuit_breaker = { failure_ratio = 0.1, minimum_throughput = 100, break_duration = 5.0 }

    [profiles.payments]
    extends = "default"
    bulkhead = { max_concurrent = 20, max_queue = 50 }

    [routes]
    "api.payments.example" = "payments"

A profile may ``extends`` another and override single fields (a nested table overrides only the
keys it names; ``false`` turns a policy off); ``"default"`` and ``"model-api"``
(:meth:`Profile.model_api`) may be extended without being defined. Environment variables
``HTTPX_RESILIENCE__<PROFILE>__<FIELD>[__<KEY>]`` override single fields. Every problem is a
:class:`~httpx_resilience.ConfigError` naming the file, the profile, the key and what was
expected, all problems at once.

The package, one idea a module: ``_schema`` (:class:`Profile` and its options classes, checked
as ``_options`` describes), ``_loading`` (a mapping or file read in named steps, with
``extends``), ``_environment`` (the ``HTTPX_RESILIENCE__...`` overrides), ``_building`` (a
profile into a pipeline), ``_registry`` (:class:`Registry`) and ``_routing`` (which profile a
request uses). Every name is re-exported here, where it has always been imported from.
"""

from __future__ import annotations

# Every name the module profiles.py had, where it has always been imported from (the private
# ones too: the command line, the HTTP layer and the tests import some of them).
from ._building import _alternate as _alternate
from ._building import _redis_backend as _redis_backend
from ._environment import _ENV_PREFIX as _ENV_PREFIX
from ._environment import _apply_environment as _apply_environment
from ._environment import _env_name as _env_name
from ._environment import _env_value as _env_value
from ._loading import _INVALID as _INVALID
from ._loading import _alternate_problems as _alternate_problems
from ._loading import _merge as _merge
from ._loading import _parse as _parse
from ._options import _HINTS as _HINTS
from ._options import _at as _at
from ._options import _field as _field
from ._options import _field_types as _field_types
from ._options import _Options as _Options
from ._options import _options_class as _options_class
from ._options import _Problems as _Problems
from ._options import _unknown as _unknown
from ._registry import Registry as Registry
from ._routing import PROFILE_EXTENSION as PROFILE_EXTENSION
from ._routing import _route_matches as _route_matches
from ._routing import _route_problems as _route_problems
from ._routing import _url_route as _url_route
from ._schema import _OFF as _OFF
from ._schema import DEFAULT_PROFILE as DEFAULT_PROFILE
from ._schema import MODEL_API_PROFILE as MODEL_API_PROFILE
from ._schema import MODEL_API_STATUSES as MODEL_API_STATUSES
from ._schema import AdaptiveLimitOptions as AdaptiveLimitOptions
from ._schema import AdaptiveThrottleOptions as AdaptiveThrottleOptions
from ._schema import AlternateOptions as AlternateOptions
from ._schema import BudgetOptions as BudgetOptions
from ._schema import BulkheadOptions as BulkheadOptions
from ._schema import CacheOptions as CacheOptions
from ._schema import CircuitBreakerOptions as CircuitBreakerOptions
from ._schema import FallbackOptions as FallbackOptions
from ._schema import HedgingOptions as HedgingOptions
from ._schema import PacingOptions as PacingOptions
from ._schema import Profile as Profile
from ._schema import RateLimitOptions as RateLimitOptions
from ._schema import RedisOptions as RedisOptions
from ._schema import RetryOptions as RetryOptions
from ._schema import _as_mapping as _as_mapping
from ._schema import _built_in as _built_in
from ._schema import settings as settings
from ._values import _HEADER_NAMES as _HEADER_NAMES
from ._values import _HTTP_URL as _HTTP_URL
from ._values import _NEVER as _NEVER
from ._values import _PARTITION as _PARTITION
from ._values import _REDIS_URL as _REDIS_URL
from ._values import _STATUSES as _STATUSES
from ._values import _header_names as _header_names
from ._values import _http_url as _http_url
from ._values import _redis_url as _redis_url
from ._values import _show_url as _show_url
from ._values import masked_url as masked_url

__all__ = [
    "AdaptiveLimitOptions",
    "AdaptiveThrottleOptions",
    "AlternateOptions",
    "BudgetOptions",
    "BulkheadOptions",
    "CacheOptions",
    "CircuitBreakerOptions",
    "FallbackOptions",
    "HedgingOptions",
    "PacingOptions",
    "Profile",
    "RateLimitOptions",
    "RedisOptions",
    "Registry",
    "RetryOptions",
]
