from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from httpx_resilience import RetryBudget


def test_the_floor_allows_min_per_second_times_ttl_retries_without_traffic() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=10.0, ttl=10.0)
    allowed = sum(budget.try_withdraw(5.0) for _ in range(150))
    assert allowed == 100


def test_retries_scale_with_requests() -> None:
    budget = RetryBudget()  # 0.2, 10/s, 10 s
    for _ in range(1000):
        budget.deposit(1.0)
    assert budget.balance(1.0) == pytest.approx(300.0)
    allowed = sum(budget.try_withdraw(1.0) for _ in range(1000))
    assert allowed == 300


def test_the_window_slides_in_tenths_of_the_ttl() -> None:
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, ttl=10.0)
    for _ in range(5):
        budget.deposit(0.5)  # slice [0, 1)
    for _ in range(3):
        budget.deposit(4.2)  # slice [4, 5)
    assert budget.balance(9.99) == 8
    # At 10.0 the slice [0, 1) leaves the window; [4, 5) stays until 14.0.
    assert budget.balance(10.0) == 3
    assert budget.balance(13.99) == 3
    assert budget.balance(14.0) == 0


def test_withdrawals_leave_the_window_too() -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.2, ttl=10.0)  # 2 retries per window
    assert budget.try_withdraw(0.0)
    assert budget.try_withdraw(0.5)
    assert not budget.try_withdraw(9.9)
    assert budget.try_withdraw(10.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ratio": 1.5}, "RetryBudget: ratio must be a number between 0 and 1, got 1.5"),
        ({"ratio": -0.1}, "RetryBudget: ratio must be a number between 0 and 1, got -0.1"),
        ({"min_per_second": -1}, "RetryBudget: min_per_second must be a finite number >= 0"),
        ({"ttl": 0}, "RetryBudget: ttl must be a finite number > 0, got 0"),
    ],
)
def test_bad_options_are_named(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", "[.]")):
        RetryBudget(**options)


operations = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=4, allow_nan=False),  # time step
        st.sampled_from(["deposit", "withdraw"]),
        st.integers(1, 20),  # how many
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    ops=operations,
    ratio=st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0]),
    floor=st.sampled_from([0.0, 0.1, 1.0, 10.0]),
    ttl=st.sampled_from([1.0, 10.0, 30.0]),
)
def test_the_budget_matches_its_definition(
    ops: list[tuple[float, str, int]], ratio: float, floor: float, ttl: float
) -> None:
    """A retry is allowed exactly when, counting it, the retries in the window stay within
    ratio * requests in the window + floor * ttl (the window: the last ten slices of ttl/10)."""
    budget = RetryBudget(ratio=ratio, min_per_second=floor, ttl=ttl)
    slice_length = ttl / 10
    history: list[tuple[int, str]] = []  # (slice number, kind) of every accepted operation
    now = 0.0
    for step, kind, count in ops:
        now += step
        current = int(now // slice_length)
        for _ in range(count):
            window = [k for s, k in history if s > current - 10]
            deposits = window.count("deposit")
            withdrawals = window.count("withdraw")
            if kind == "deposit":
                budget.deposit(now)
                history.append((current, "deposit"))
                continue
            allowed = withdrawals + 1 <= ratio * deposits + floor * ttl + 1e-9
            assert budget.try_withdraw(now) == allowed
            if allowed:
                history.append((current, "withdraw"))
