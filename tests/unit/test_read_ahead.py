import threading

import pytest

from dicomrst.web.streaming import read_ahead


def test_items_arrive_in_order_and_errors_after_them():
    def items():
        yield from range(5)
        raise ValueError("broken body")

    received = []
    with pytest.raises(ValueError, match="broken body"):
        for item in read_ahead(items(), 2, lambda item: None):
            received.append(item)
    assert received == [0, 1, 2, 3, 4]


def test_production_runs_ahead_of_the_consumer_but_no_further_than_the_depth():
    produced = []
    consumed_first = threading.Event()

    def items():
        for number in range(10):
            produced.append(number)
            yield number

    reader = read_ahead(items(), 2, lambda item: None)
    assert next(reader) == 0
    consumed_first.set()
    # The producer filled the queue (2) and holds one more it is trying to hand over.
    for _ in range(100):
        if len(produced) >= 4:
            break
        threading.Event().wait(0.01)
    assert 3 <= len(produced) <= 4
    assert list(reader) == list(range(1, 10))


def test_unconsumed_items_are_discarded_when_the_consumer_stops():
    discarded = []
    reader = read_ahead(iter(range(10)), 3, discarded.append)
    assert next(reader) == 0
    reader.close()
    assert discarded and all(item > 0 for item in discarded)
    assert len(discarded) <= 4
