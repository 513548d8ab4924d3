"""``pipelines.ingest.files.prefetch``: the next chunk is produced in a background thread, and
nothing about order, errors or clean-up changes for the consumer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pipelines.ingest.files import prefetch


def test_items_arrive_in_order_and_all_of_them() -> None:
    assert list(prefetch(iter(range(1000)))) == list(range(1000))


def test_items_are_produced_in_another_thread_one_step_ahead() -> None:
    produced: list[tuple[int, str]] = []

    def items() -> Iterator[int]:
        for i in range(3):
            produced.append((i, threading.current_thread().name))
            yield i

    assert list(prefetch(items())) == [0, 1, 2]
    assert [name for _, name in produced] == ["tm-parse"] * 3
    assert threading.current_thread().name != "tm-parse"


def test_an_error_in_the_producer_is_raised_in_the_consumer_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad chunk at line 7")

    got: list[int] = []

    def consume() -> None:
        for item in prefetch(items()):
            got.append(item)

    with pytest.raises(ValueError, match="bad chunk at line 7"):
        consume()
    assert got == [1, 2]


def test_stopping_early_closes_the_producer_and_its_clean_up_runs() -> None:
    closed = threading.Event()
    made: list[int] = []

    def items() -> Iterator[int]:
        try:
            for i in range(1_000_000):
                made.append(i)
                yield i
        finally:
            closed.set()

    for item in prefetch(items()):
        if item == 2:
            break
    assert closed.wait(5), "the producer's finally block did not run"
    assert len(made) < 10  # it stopped, one or two items ahead at most


def test_an_error_in_the_consumer_stops_the_producer() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    def consume() -> None:
        for item in prefetch(items()):
            if item == 5:
                raise RuntimeError("consumer failed")

    with pytest.raises(RuntimeError, match="consumer failed"):
        consume()
    assert closed.wait(5)
    assert not any(t.name == "tm-parse" and t.is_alive() for t in threading.enumerate())
