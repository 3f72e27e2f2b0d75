"""Streaming a backend's iterator as an HTTP body without losing the chance to answer with a status."""
from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def primed(items: Iterator[T]) -> Iterator[T]:
    """Pull the first item now, so connection and association failures raise while the handler can
    still answer 503/504; the rest streams, and a failure then ends the body visibly unfinished."""
    try:
        first = next(items)
    except StopIteration:
        return iter(())
    return _rest(first, items)


def _rest(first: T, items: Iterator[T]) -> Iterator[T]:
    try:
        yield from itertools.chain((first,), items)
    except Exception as error:
        # The status line is gone; dropping the connection without the final chunk is what tells
        # the client the body is incomplete.
        log.error("response stream broken off: %s", error)
        raise
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
