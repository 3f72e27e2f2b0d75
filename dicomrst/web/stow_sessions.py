"""The parts of one STOW-RS body stored on two sessions at once when the origin has room for a second.

The request's own session is opened when the first part is read, made ready for its instance (proposing
what it needs costs a tenth of proposing every common storage class); an origin that is down or busy
fails there, before more of the body is read.

A C-STORE waits for its response (PS3.7 9.1.1; pynetdicom offers no asynchronous operations window), so
on one association the PACS waits while the gateway sends and the gateway waits while the PACS stores.
A spare session (a second association, taken only if a pool slot is free at that moment) stores another
instance meanwhile. Each session stores on a thread (a greenlet under gevent) of its own; the request's
greenlet reads every part and hands it to whichever session is free first, so neither waits while the
other has parts to spare. What became of each part is given back in the order of the body.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from typing import Generic, TypeVar

from dicomrst.backends.base import BackendError, StoreSession
from dicomrst.dicomweb.stow import SpooledPart, UploadedInstance

log = logging.getLogger(__name__)

Outcome = TypeVar("Outcome")
Item = tuple[int, SpooledPart]


class _Pause:
    """Handed to the request's session when no part is ready: give the association back for now."""


class _Stop:
    """Handed to a session when it gets no more parts."""


class PartStores(Generic[Outcome]):
    """Stores every part with ``store``: on the request's session from ``open_session`` (opened at the
    first part), and on a spare session from ``open_spare`` (started at the second part)."""

    def __init__(self, store: Callable[[SpooledPart, StoreSession], Outcome],
                 open_session: Callable[[Sequence[UploadedInstance]], AbstractContextManager[StoreSession]],
                 open_spare: Callable[[Sequence[UploadedInstance]], AbstractContextManager[StoreSession] | None]
                 ) -> None:
        self.store = store
        self.open_session = open_session
        self.open_spare = open_spare
        self.outcomes: dict[int, Outcome] = {}
        self.read_error: Exception | None = None  # what reading the body raised
        self._seen: list[UploadedInstance] = []  # the first instances: what the sessions propose
        # A session waiting for a part puts itself here; None: a session ended.
        self._free: queue.Queue[_Storing[Outcome] | None] = queue.Queue()
        self._main: _Storing[Outcome] | None = None
        self._spare: _Storing[Outcome] | None = None

    def run(self, parts: Iterator[SpooledPart]) -> list[Outcome]:
        """Each part's outcome in the order of the body. Reading stops at the first error, left in
        ``read_error`` once every part read before it is stored; what opening the request's session
        or storing raised is raised (a body without parts opens no session)."""
        numbered = enumerate(parts)
        sessions = ExitStack()
        try:
            while True:
                try:
                    item = next(numbered)
                except StopIteration:
                    break
                except Exception as error:
                    self.read_error = error
                    break
                if item[1].instance is not None and len(self._seen) < 2:
                    self._seen.append(item[1].instance)
                if self._main is None:
                    self._start_main(sessions, item)
                elif item[0] == 1:
                    opening = self.open_spare(self._seen)
                    if opening is not None:
                        self._spare = _Storing(self, "stow-spare", opening=opening)
                if not self._hand(item):
                    break
        finally:
            self._end(sessions, parts)
        for storing in (self._main, self._spare):
            if storing is not None and storing.failure is not None:
                raise storing.failure
        return [self.outcomes[index] for index in sorted(self.outcomes)]

    def pause(self) -> None:
        """No part is ready (a slow client): the request's session gives its association back, and the
        spare session ends. Called on the request's greenlet, from within reading the next part."""
        if self._spare is not None:
            self._spare.stop()
        if self._main is not None and not self._main.stopped:
            self._main.inbox.put(_Pause())

    def _start_main(self, sessions: ExitStack, first: Item) -> None:
        try:
            session = sessions.enter_context(self.open_session(self._seen))
        except BaseException:
            first[1].discard()
            raise
        self._main = _Storing(self, "stow-main", session=session)

    def _hand(self, item: Item) -> bool:
        """To the first session free. False once storing raised (run() raises it then; the part is
        discarded, and no more are read)."""
        while True:
            storing = self._free.get()
            if storing is None:  # a session ended: a spare with no room at the origin, or storing raised
                if any(s is not None and s.failure is not None for s in (self._main, self._spare)):
                    item[1].discard()
                    return False
                continue
            if storing.stopped:
                continue
            storing.inbox.put(item)
            return True

    def _end(self, sessions: ExitStack, parts: Iterator[SpooledPart]) -> None:
        """Every part handed out is stored before this returns; the two associations are released at
        the same time."""
        for storing in (self._main, self._spare):
            if storing is not None:
                storing.stop()
        if self._main is not None:
            self._main.thread.join()
        sessions.close()
        if self._spare is not None:
            self._spare.thread.join()
        close = getattr(parts, "close", None)
        if close is not None:  # the parts read ahead are discarded now, not when collected
            close()

    def store_one(self, item: Item, session: StoreSession) -> None:
        index, part = item
        try:
            self.outcomes[index] = self.store(part, session)
        finally:
            part.discard()


class _Storing(Generic[Outcome]):
    """A session storing the parts handed to it, on a thread (a greenlet under gevent) of its own: the
    request's ``session``, or a spare one ``opening`` here (None, or a BackendError on entering it: no
    room at the origin, and the request's session stores everything)."""

    def __init__(self, stores: PartStores[Outcome], name: str, session: StoreSession | None = None,
                 opening: AbstractContextManager[StoreSession] | None = None) -> None:
        self.stores = stores
        self.session = session
        self.opening = opening
        self.inbox: queue.Queue[Item | _Pause | _Stop] = queue.Queue()
        self.failure: BaseException | None = None
        self.stopped = False  # (on the request's greenlet) handed _Stop: no more parts for it
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.inbox.put(_Stop())

    def _run(self) -> None:
        try:
            with ExitStack() as opened:
                session = self.session
                if session is None and self.opening is not None:
                    try:
                        session = opened.enter_context(self.opening)
                    except BackendError as error:
                        log.debug("STOW-RS without a second session: %s", error)
                        return
                if session is not None:
                    self._serve(session)
        except BaseException as error:  # the request's greenlet raises it
            self.failure = error
        finally:
            self.stores._free.put(None)

    def _serve(self, session: StoreSession) -> None:
        while True:
            self.stores._free.put(self)
            item = self.inbox.get()
            while isinstance(item, _Pause):
                session.pause()
                item = self.inbox.get()
            if isinstance(item, _Stop):
                return
            self.stores.store_one(item, session)
