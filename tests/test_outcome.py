from __future__ import annotations

import asyncio

import pytest

from httpx_resilience import (
    BrokenCircuitError,
    BulkheadRejected,
    IsolatedCircuitError,
    Outcome,
    RateLimitRejected,
    TimeoutRejected,
    handle_all,
    handle_exceptions,
    handle_results,
)
from httpx_resilience.outcome import GENERIC_CLASSIFIER, OutcomePredicate


def test_outcome_holds_a_result_or_an_exception() -> None:
    ok = Outcome(result=5)
    assert not ok.failed
    assert ok.unwrap() == 5
    boom = ValueError("boom")
    bad: Outcome[int] = Outcome(exception=boom)
    assert bad.failed
    with pytest.raises(ValueError, match="boom"):
        bad.unwrap()
    assert "boom" in repr(bad)
    assert repr(ok) == "Outcome(result=5)"


def test_handle_exceptions_matches_the_given_classes_only() -> None:
    predicate = handle_exceptions(ValueError, KeyError)
    assert predicate(Outcome(exception=ValueError()))
    assert predicate(Outcome(exception=KeyError()))
    assert not predicate(Outcome(exception=TypeError()))
    assert not predicate(Outcome(result=1))
    assert repr(predicate) == "handle_exceptions(ValueError, KeyError)"


def test_handle_exceptions_defaults_to_any_exception_with_an_extra_test() -> None:
    predicate = handle_exceptions(predicate=lambda exc: "retry" in str(exc))
    assert predicate(Outcome(exception=RuntimeError("please retry")))
    assert not predicate(Outcome(exception=RuntimeError("fatal")))


@pytest.mark.parametrize(
    "exc", [asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(1), GeneratorExit()]
)
def test_cancellation_and_exits_are_never_handled(exc: BaseException) -> None:
    assert not handle_exceptions(BaseException)(Outcome(exception=exc))
    assert not handle_all(Outcome(exception=exc))
    assert not GENERIC_CLASSIFIER.is_failure(Outcome(exception=exc))


def test_handle_exceptions_rejects_things_that_are_not_exception_classes() -> None:
    with pytest.raises(TypeError, match="exception classes"):
        handle_exceptions(ValueError("an instance"))  # type: ignore[arg-type]


def test_handle_results_looks_at_results_only() -> None:
    predicate = handle_results(lambda value: value is None)
    assert predicate(Outcome(result=None))
    assert not predicate(Outcome(result=0))
    assert not predicate(Outcome(exception=ValueError()))


def test_predicates_combine() -> None:
    is_none = handle_results(lambda v: v is None)
    value_error = handle_exceptions(ValueError)
    either = is_none | value_error
    assert either(Outcome(result=None))
    assert either(Outcome(exception=ValueError()))
    assert not either(Outcome(result=1))

    both = handle_exceptions(ValueError) & handle_exceptions(predicate=lambda e: "x" in str(e))
    assert both(Outcome(exception=ValueError("x")))
    assert not both(Outcome(exception=ValueError("y")))

    inverted = ~value_error
    assert inverted(Outcome(result=1))
    assert not inverted(Outcome(exception=ValueError()))


def test_plain_callables_combine_on_either_side() -> None:
    def big(outcome: Outcome[int]) -> bool:
        return (outcome.result or 0) > 10

    left = big | handle_exceptions(KeyError)
    right = handle_exceptions(KeyError) | big
    for predicate in (left, right):
        assert isinstance(predicate, OutcomePredicate)
        assert predicate(Outcome(result=11))
        assert predicate(Outcome(exception=KeyError()))
        assert not predicate(Outcome(result=3))
    assert (big & handle_results(lambda v: v % 2 == 0))(Outcome(result=12))
    assert not (handle_results(lambda v: v % 2 == 0) & big)(Outcome(result=4))
    assert "big" in repr(left)


def test_the_generic_classifier_treats_exceptions_as_failures() -> None:
    assert GENERIC_CLASSIFIER.is_failure(Outcome(exception=ValueError()))
    assert not GENERIC_CLASSIFIER.is_failure(Outcome(result=None))
    assert GENERIC_CLASSIFIER.retry_after(Outcome(result=1)) is None


@pytest.mark.parametrize(
    "rejection",
    [
        BrokenCircuitError("open", retry_after=2.0),
        IsolatedCircuitError("isolated"),
        BulkheadRejected("full"),
        RateLimitRejected("empty", retry_after=0.5),
    ],
)
def test_another_policys_rejection_is_not_a_failure(rejection: Exception) -> None:
    outcome = Outcome[None](exception=rejection)
    assert not GENERIC_CLASSIFIER.is_failure(outcome)
    # ...unless a predicate says so (handle_all takes every Exception).
    assert handle_all(outcome)
    assert GENERIC_CLASSIFIER.retry_after(outcome) == getattr(rejection, "retry_after", None)


def test_an_attempt_timeout_is_a_failure() -> None:
    outcome = Outcome[None](exception=TimeoutRejected("slow", timeout=1.0))
    assert GENERIC_CLASSIFIER.is_failure(outcome)
    assert GENERIC_CLASSIFIER.retry_after(outcome) is None
