"""Streaming a backend's iterator as an HTTP body without losing the chance to answer with a status."""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
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


def gzipped(chunks: Iterator[bytes], level: int = 6) -> Iterator[bytes]:
    """``chunks`` as one gzip stream (RFC 1952), compressed as they come."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        compressed = compressor.compress(chunk)
        if compressed:
            yield compressed
    yield compressor.flush()


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def read_ahead(items: Iterator[T], depth: int, discard: Callable[[T], None],
               on_idle: Callable[[], None] | None = None, idle_seconds: float = 1.0,
               check_stalled: Callable[[], None] | None = None) -> Iterator[T]:
    """``items`` produced on a thread of their own (a greenlet under gevent), up to ``depth`` ahead of
    the consumer, so that reading a request body overlaps with sending what was already read.
    Errors of ``items`` reach the consumer in order; items left unconsumed are given to ``discard``.

    When no item is ready for ``idle_seconds``, ``on_idle`` is called (once per wait), and while the
    wait goes on ``check_stalled`` is called every second, to end it by raising."""
    ready: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: T | _End) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    discard(item)
                    return
        except BaseException as error:
            offer(_End(error))
            return
        offer(_End(None))

    def next_ready() -> T | _End:
        if on_idle is None and check_stalled is None:
            return ready.get()
        try:
            return ready.get(timeout=idle_seconds)
        except queue.Empty:
            pass
        if on_idle is not None:
            on_idle()
        while True:
            try:
                return ready.get(timeout=1.0)
            except queue.Empty:
                if check_stalled is not None:
                    check_stalled()

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item = next_ready()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        # A producer blocked reading from a client that sends nothing is not waited for: it ends when
        # the connection does.
        producer.join(timeout=1.0)
        while not ready.empty():
            leftover = ready.get_nowait()
            if not isinstance(leftover, _End):
                discard(leftover)
