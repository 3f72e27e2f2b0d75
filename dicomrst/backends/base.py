"""What the web layer asks of a backend, and the typed errors a backend raises.

A backend never imports Flask: it returns pydicom Datasets (or iterators of them) and raises these
errors; ``web.errors`` alone turns them into HTTP statuses.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom import Dataset

from dicomrst.dicomweb.query import QidoQuery


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
class Health:
    healthy: bool
    detail: str


class Backend(ABC):
    """One configured AET: a PACS spoken to with DIMSE, or an S3 bucket."""

    aet: str

    @abstractmethod
    def health(self) -> Health:
        """Check the origin for real (C-ECHO, bucket lookup) within the configured timeout."""

    @abstractmethod
    def search(self, query: QidoQuery) -> Iterator[Dataset]:
        """QIDO-RS: the matches of ``query``, streamed as the origin returns them.

        Connection and association errors are raised before the first item is yielded, so the
        web layer can still answer with a proper status; later failures end the iterator with an
        error. Closing the iterator early releases whatever it holds.
        """
