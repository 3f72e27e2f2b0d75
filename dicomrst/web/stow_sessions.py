"""The parts of one STOW-RS body stored on two sessions at once when the origin has room for a second.

The request's own session is opened when the first part is read, made ready for its instance (proposing
what it needs costs a tenth of proposing every common storage class); an origin that is down or busy
fails there, before more of the body is read.

A C-STORE waits for its response (PS3.7 9.1.1; pynetdicom offers no asynchronous operations window), so
on one association the PACS waits while the gateway sends and the gateway waits while the PACS stores.
A spare session (a second association, taken only if a pool slot is free at that moment) stores the next
instance meanwhile. The request's own greenlet reads every part and hands one to the spare whenever the
spare is free; each session is used only on its own greenlet. What became of each part is given back
in the order of the body.
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


class PartStores(Generic[Outcome]):
    """Stores every part with ``store``: on the request's session from ``open_session`` (opened at the
    first part), and on a spare session from ``open_spare`` (started at the second part) whenever that
    one is free."""

    def __init__(self, store: Callable[[SpooledPart, StoreSession], Outcome],
                 open_session: Callable[[Sequence[UploadedInstance]], AbstractContextManager[StoreSession]],
                 open_spare: Callable[[Sequence[UploadedInstance]], AbstractContextManager[StoreSession] | None]
                 ) -> None:
        self.store = store
        self.open_session = open_session
        self.open_spare = open_spare
        self.outcomes: dict[int, Outcome] = {}
        self.read_error: Exception | None = None  # what reading the body raised
        self._spare: _Spare[Outcome] | None = None
        self._spare_tried = False
        self._seen: list[UploadedInstance] = []  # the first instances: what the spare session proposes
        self._session: StoreSession | None = None

    def run(self, parts: Iterator[SpooledPart]) -> list[Outcome]:
        """Each part's outcome in the order of the body. Reading stops at the first error, left in
        ``read_error`` once every part read before it is stored; what opening the session or storing
        raised is raised (a body without parts opens no session)."""
        numbered = enumerate(parts)
        with ExitStack() as sessions:
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
                    session = self._session or self._open(sessions, item)
                    if item[0] == 1:
                        self._start_spare()
                    if self._spare is not None and self._spare.free():
                        self._spare.hand(item)
                    else:
                        self._store_one(item, session)
            finally:
                if self._spare is not None:
                    self._spare.finish()
                close = getattr(parts, "close", None)
                if close is not None:  # the parts read ahead are discarded now, not when collected
                    close()
        if self._spare is not None and self._spare.failure is not None:
            raise self._spare.failure
        return [self.outcomes[index] for index in sorted(self.outcomes)]

    def pause(self) -> None:
        """No part is ready (a slow client): the request's session gives its association back, and the
        spare session ends. Called on the request's greenlet, from within reading the next part."""
        if self._spare is not None:
            self._spare.stop()
        if self._session is not None:
            self._session.pause()

    def _open(self, sessions: ExitStack, first: Item) -> StoreSession:
        try:
            self._session = sessions.enter_context(self.open_session(self._seen))
        except BaseException:
            first[1].discard()
            raise
        return self._session

    def _start_spare(self) -> None:
        if self._spare_tried:
            return
        self._spare_tried = True
        opened = self.open_spare(self._seen)
        if opened is not None:
            self._spare = _Spare(self, opened)

    def _store_one(self, item: Item, session: StoreSession) -> None:
        index, part = item
        try:
            self.outcomes[index] = self.store(part, session)
        finally:
            part.discard()


class _Spare(Generic[Outcome]):
    """The spare session on a thread (a greenlet under gevent) of its own, taking one part at a time."""

    def __init__(self, stores: PartStores[Outcome], opened: AbstractContextManager[StoreSession]) -> None:
        self.stores = stores
        self.opened = opened
        self.inbox: queue.Queue[Item | None] = queue.Queue(maxsize=1)
        self.failure: BaseException | None = None
        self._waiting = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="stow-spare", daemon=True)
        self._thread.start()

    def free(self) -> bool:
        """Open, and waiting for a part."""
        return self._waiting and not self._stopped and self.inbox.empty()

    def hand(self, item: Item) -> None:
        self._waiting = False
        self.inbox.put(item)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.inbox.put(None)

    def finish(self) -> None:
        self.stop()
        self._thread.join()

    def _run(self) -> None:
        try:
            with self.opened as session:
                while not self._stopped:
                    self._waiting = True
                    item = self.inbox.get()
                    if item is None:
                        break
                    self.stores._store_one(item, session)
        except BackendError as error:  # no room at the origin now: the request's session does it all
            log.debug("STOW-RS without a second session: %s", error)
        except BaseException as error:  # the request's greenlet raises it
            self.failure = error
        finally:
            self._waiting = False
            self._stopped = True
