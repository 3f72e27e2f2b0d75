"""What the web layer asks of a backend, and the typed errors a backend raises.

A backend never imports Flask: it returns pydicom Datasets and Part-10 bytes (or iterators of them) and
raises these errors; ``web.errors`` alone turns them into HTTP statuses.
"""
from __future__ import annotations

import itertools
import logging
from abc import ABC, abstractmethod
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from pydicom import Dataset

from dicomrst.dicomweb.metadata import INSTANCE_URL_PLACEHOLDER, instance_metadata
from dicomrst.dicomweb.part10 import uids_of
from dicomrst.dicomweb.query import QidoQuery
from dicomrst.dicomweb.stow import UploadedInstance

log = logging.getLogger(__name__)


class BackendError(Exception):
    """Base of every error a backend reports; the message is safe to show a client."""


class NotSupported(BackendError):
    """The backend kind does not offer this service (HTTP 501)."""


class BackendUnavailable(BackendError):
    """The origin cannot be reached or refused us (HTTP 503)."""


class BackendBusy(BackendError):
    """No association slot came free in time (HTTP 503, retry later)."""


class BackendTimeout(BackendError):
    """The origin accepted the request but did not answer in time (HTTP 504)."""


class BackendProtocolError(BackendError):
    """The origin answered with a failure or something we cannot use (HTTP 502)."""


class NotFound(BackendError):
    """Nothing matched (HTTP 404)."""


@dataclass(frozen=True)
class InstanceSelection:
    """The instances a WADO-RS request names: a study, a series of it, or one instance of that series.
    The UIDs were validated where they entered."""

    study_uid: str
    series_uid: str | None = None
    sop_uid: str | None = None

    @property
    def level(self) -> str:
        """The Query/Retrieve level (PS3.4 C.6.2) that selects exactly these instances."""
        if self.sop_uid is not None:
            return "IMAGE"
        return "SERIES" if self.series_uid is not None else "STUDY"


# Study, Series and SOP Instance UID of one instance.
InstanceUids = tuple[str, str, str]



@dataclass(frozen=True)
class StoredFrames:
    """The frames of one instance as stored, read without loading the instance (``read`` takes 1-based
    frame numbers, already checked against ``count``, and says None if the instance is gone meanwhile)."""

    transfer_syntax: str
    count: int
    read: Callable[[list[int]], list[bytes] | None]


@dataclass(frozen=True)
class Validators:
    """What HTTP caching (RFC 9111, 9110 8.8) can say of a response before its body: the identity of
    the instances it is made of, when they were retrieved, and how long ago the origin confirmed them."""

    identity: str
    last_modified: float  # time.time()
    age: float  # seconds
    max_age: float  # seconds the gateway serves them without asking the origin again


@dataclass
class SearchNotes:
    """What a search could not do as the client asked, found while it runs (in the association's
    negotiation, in the answers). The web layer tells the client, as ``Warning: 299`` headers
    (PS3.18 8.3.4 and 6.7.2), once the first match or the end of the search is in hand."""

    warnings: list[str] = field(default_factory=list)
    # A caller that runs what is handed to ``finish`` itself once its answer is out (the web layer,
    # after the last byte of the response) sets this to a list: the DIMSE release handshake then
    # costs the client nothing. Left None, ``finish`` runs what it is given at once.
    finishing: list[Callable[[], None]] | None = None
    # Set by a search that can tell whether its next match is already at hand (no wait on the
    # PACS): the web layer then sends such matches together, in fewer and larger writes.
    next_ready: Callable[[], bool] | None = None

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def finish(self, cleanup: Callable[[], None]) -> None:
        """Run `cleanup` (the matches are all out) now, or later if the caller takes it."""
        if self.finishing is None:
            cleanup()
        else:
            self.finishing.append(cleanup)

    def run_finishing(self) -> None:
        """Run what was handed to ``finish``, each even if one before it failed."""
        finishing, self.finishing = self.finishing or [], None
        for cleanup in finishing:
            try:
                cleanup()
            except Exception:  # runs as the response closes: nothing may escape
                log.exception("finishing a search failed")


# PS3.18 8.3.4.1's wording for a server that did not apply fuzzy matching.
FUZZY_MATCHING_NOT_SUPPORTED = (
    "The fuzzymatching parameter is not supported. Only literal matching has been performed."
)


@dataclass(frozen=True)
class StoreOutcome:
    """What the origin said of one instance: stored (perhaps with a warning reason) or failed (with a
    failure reason), as the codes of the Store Instances Response Module."""

    stored: bool
    reason: int | None = None


class StoreSession(ABC):
    """Stores the instances of one STOW-RS request, keeping what it needs (an association) open
    between them."""

    @abstractmethod
    def store(self, instance: UploadedInstance) -> StoreOutcome:
        """Store one instance; an instance is reported stored only after the origin said so."""

    def pause(self) -> None:
        """The client is slow to send the next instance: give back what is held for the origin (an
        association, its slot); ``store`` takes it again. By default there is nothing to give back."""
        return None


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str


def paged(matches: Iterator[Dataset], query: QidoQuery) -> Iterator[Dataset]:
    """``offset`` and ``limit`` for a backend that cannot push them down to its origin: the matches
    are skipped and cut here, and the origin's search is closed (a C-FIND cancelled by releasing its
    association) as soon as the page is full."""
    stop = None if query.limit is None else query.offset + query.limit
    try:
        yield from itertools.islice(matches, query.offset, stop)
    finally:
        close = getattr(matches, "close", None)
        if close is not None:
            close()


class Backend(ABC):
    """One configured AET. A backend offers the services it can: those it does not override answer
    NotSupported (HTTP 501). ``metadata`` and ``frames`` derive from ``retrieve`` unless a backend (or a
    cache in front of one) can do better."""

    aet: str
    kind: str  # the name of its kind, as aets[].backend says it

    @abstractmethod
    def health(self) -> Health:
        """Check the origin for real (C-ECHO, bucket lookup) within the configured timeout."""

    def describe(self) -> dict[str, object]:
        """What ``/aets?detail=true`` says of this AET."""
        return {"aet": self.aet, "backend": self.kind}

    def search(self, query: QidoQuery, notes: SearchNotes) -> Iterator[Dataset]:
        """QIDO-RS: the matches of ``query``, streamed as the origin returns them, ``offset`` and
        ``limit`` applied (``paged`` does it for a backend that cannot do better); what could not be
        done as asked goes into ``notes`` before the first match is yielded.

        Connection and association errors are raised before the first item is yielded, so the
        web layer can still answer with a proper status; later failures end the iterator with an
        error. Closing the iterator early releases whatever it holds.
        """
        raise NotSupported(f"QIDO-RS is not available for {self.kind} AETs")

    def retrieve(self, selection: InstanceSelection) -> Iterator[bytes]:
        """WADO-RS: each selected instance as Part-10 bytes, as soon as it arrives.

        Nothing found raises NotFound before the first item; as with search, errors before the first
        instance are raised on the first ``next()``, and a failure part-way ends the iterator with
        an error. One instance at a time is held, never the whole selection.
        """
        raise NotSupported(f"WADO-RS is not available for {self.kind} AETs")

    def metadata(self, selection: InstanceSelection) -> Iterator[bytes]:
        """The instances WADO-RS metadata is built from, as Part-10 bytes: by default, retrieved whole."""
        return self.retrieve(selection)

    def frames(self, selection: InstanceSelection) -> Iterator[bytes]:
        """The one instance whose frames or bulk data are asked for: by default, retrieved whole."""
        return self.retrieve(selection)

    def metadata_documents(self, selection: InstanceSelection) -> Iterator[tuple[InstanceUids, str]]:
        """The DICOM JSON metadata of each selected instance as JSON text, its URL given as
        ``INSTANCE_URL_PLACEHOLDER``: by default computed from ``metadata``."""
        for part10 in self.metadata(selection):
            document = instance_metadata(part10, INSTANCE_URL_PLACEHOLDER)
            yield uids_of(part10), json.dumps(document, ensure_ascii=False)

    def retrieve_alone(self, selection: InstanceSelection) -> Iterator[bytes]:
        """``retrieve``, for a selection that is to be retrieved alone whatever a cache would prefetch
        around it (the one instance a thumbnail shows)."""
        return self.retrieve(selection)

    def kept_rendering(self, uids: InstanceUids, variant: str, render: Callable[[], bytes]) -> bytes:
        """A rendering of an instance (``variant`` names what shapes it): kept where the backend can
        keep it (a cache), else rendered each time."""
        return render()

    def remembered(self, name: str, compute: Callable[[], str]) -> str:
        """What ``compute`` says of the origin (a study's representative instance), remembered where the
        backend can for as long as it serves what it retrieved without asking again; else computed."""
        return compute()

    def stored_frames(self, selection: InstanceSelection) -> StoredFrames | None:
        """The frames of one instance read as stored without loading it, where the backend can (a
        cache); None sends the web layer to ``frames``."""
        return None

    def validators(self, selection: InstanceSelection) -> Validators | None:
        """Validators of what a WADO-RS request of ``selection`` would be served from, where known
        before serving it; None when they are not."""
        return None

    def store_session(self, like: Sequence[UploadedInstance] = ()) -> AbstractContextManager[StoreSession]:
        """STOW-RS: a session to store instances one by one, made ready for instances `like` these
        (the first of the body; any other is stored too). Entering it reaches the origin, so an
        origin that is down fails there, before more of the request body is read."""
        raise NotSupported(f"STOW-RS is not available for {self.kind} AETs")

    def spare_store_session(self, like: Sequence[UploadedInstance]) -> AbstractContextManager[StoreSession] | None:
        """A second session for the same STOW-RS request, storing beside the first while the body goes
        on, if the origin has room for it now (entering it raises a BackendError when it has not),
        made ready for instances `like` these. None: no second session is worth having."""
        return None
