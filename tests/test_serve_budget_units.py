"""Replica time per client (serving/client_budget.py), by hand: a bucket of replica seconds per client."""

from __future__ import annotations

import pytest

from crossnet_dist.serving.client_budget import ClientBudgets, client_address
from crossnet_dist.serving.requests import RequestRejected


def clocked(rate: float, burst: float):
    now = [0.0]
    return ClientBudgets(rate, burst, now=lambda: now[0]), now


def test_a_client_is_refused_once_its_replica_time_is_spent_and_told_when_to_return():
    budgets, now = clocked(rate=0.5, burst=2.0)
    for _ in range(2):  # 2 x 1.5 s of replica time: 2.0 - 3.0 = -1.0 s left
        estimate = budgets.admit("10.0.0.1", 1000, "model")
        budgets.settle("10.0.0.1", estimate, 1.5, 1000, "model")
    with pytest.raises(RequestRejected) as refused:
        budgets.admit("10.0.0.1", 1000, "model")
    assert refused.value.status == 429 and refused.value.error == "rate_limited"
    assert refused.value.headers == {"Retry-After": "2"}  # 1.0 s owed at 0.5 s per s
    budgets.admit("10.0.0.2", 1000, "model")  # another client is not affected
    now[0] = 2.1  # refilled to +0.05 s
    budgets.admit("10.0.0.1", 1000, "model")


def test_admission_charges_the_learned_cost_so_a_concurrent_burst_is_refused_before_it_runs():
    budgets, _ = clocked(rate=0.1, burst=1.0)
    budgets.settle("warm-up", budgets.admit("warm-up", 1_000_000, "full"), 2.0, 1_000_000, "full")  # 2e-6 s/px
    assert budgets.admit("10.0.0.1", 250_000, "full") == pytest.approx(0.5)  # 1.0 -> 0.5 left
    assert budgets.admit("10.0.0.1", 250_000, "full") == pytest.approx(0.5)  # 0.5 -> 0.0 left
    with pytest.raises(RequestRejected):
        budgets.admit("10.0.0.1", 250_000, "full")  # the third of three sent at once


def test_the_refill_never_exceeds_the_burst():
    budgets, now = clocked(rate=1.0, burst=3.0)
    now[0] = 1000.0  # a long quiet spell
    budgets.settle("c", budgets.admit("c", 10, "model"), 3.5, 10, "model")  # 3.0 - 3.5 = -0.5
    with pytest.raises(RequestRejected):
        budgets.admit("c", 10, "model")


def test_no_rate_means_no_limit():
    budgets, _ = clocked(rate=0.0, burst=1.0)
    for _ in range(100):
        budgets.settle("c", budgets.admit("c", 10**7, "full"), 60.0, 10**7, "full")


def test_the_client_is_the_connection_unless_a_trusted_proxy_names_it():
    assert client_address(("10.1.2.3", 5555), "203.0.113.9, 10.0.0.1", trust_forwarded=False) == "10.1.2.3"
    assert client_address(("10.1.2.3", 5555), "203.0.113.9, 10.0.0.1", trust_forwarded=True) == "203.0.113.9"
    assert client_address(("10.1.2.3", 5555), " ", trust_forwarded=True) == "10.1.2.3"
    assert client_address(None, None, trust_forwarded=False) == "unknown"
