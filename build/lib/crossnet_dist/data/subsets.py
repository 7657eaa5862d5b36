"""Deterministic subsets and the held-out test split of the prepared data sets."""

from __future__ import annotations

from typing import Sequence, TypeVar

T = TypeVar("T")
TEST_EVERY = 10  # every 10th item (by sorted name) is held out for testing


def evenly_spaced(items: Sequence[T], limit: int) -> list[T]:
    """`limit` items spread over the whole sequence (all of it if limit is 0 or larger)."""
    if limit <= 0 or limit >= len(items):
        return list(items)
    return [items[(i * len(items)) // limit] for i in range(limit)]


def is_test_index(i: int) -> bool:
    return i % TEST_EVERY == 0
