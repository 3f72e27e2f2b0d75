"""pynetdicom event handlers of the sample PACS, kept apart from the network setup."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context, evt
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from dicomrst.sample_pacs.query import (
    PATIENT_ROOT_LEVELS,
    STUDY_ROOT_LEVELS,
    InvalidIdentifier,
    find_responses,
    instances_to_retrieve,
)
from dicomrst.sample_pacs.store import InstanceStore, InvalidInstance, StoredInstance

__all__ = ["Pacing", "SamplePacsHandlers"]

LOGGER = logging.getLogger(__name__)

_PATIENT_ROOT = frozenset(
    {
        PatientRootQueryRetrieveInformationModelFind,
        PatientRootQueryRetrieveInformationModelGet,
        PatientRootQueryRetrieveInformationModelMove,
    }
)
_FIND_MODELS = frozenset({PatientRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelFind})
_SUCCESS = 0x0000
_PENDING = 0xFF00
_CANCEL = 0xFE00
_IDENTIFIER_DOES_NOT_MATCH = 0xA900
_OUT_OF_RESOURCES = 0xA700
_CANNOT_UNDERSTAND = 0xC000
_MAX_REQUESTED_CONTEXTS = 128


class _Unreadable:
    """Yielded in place of a dataset whose file cannot be read: pynetdicom counts a
    pending non-Dataset as one failed sub-operation and carries on with the rest."""


def _levels(event: Event) -> tuple[str, ...]:
    model = event.request.AffectedSOPClassUID
    return PATIENT_ROOT_LEVELS if model in _PATIENT_ROOT else STUDY_ROOT_LEVELS


def _peer(event: Event) -> str:
    requestor = event.assoc.requestor
    return f"{requestor.ae_title}@{requestor.address}:{requestor.port}"


def _read(instance: StoredInstance) -> Dataset | _Unreadable:
    try:
        return instance.read()
    except Exception:  # the file may have been removed or damaged since it was indexed
        LOGGER.exception("cannot read %s", instance.path)
        return _Unreadable()


def _refusal(status: int) -> Iterator[Any]:
    # A count of 0 makes pynetdicom answer Success at once, so announce one
    # sub-operation and fail it with the refusal status.
    yield 1
    yield status, None


def _storage_contexts(instances: list[StoredInstance]) -> list[PresentationContext]:
    """One context per SOP class offering the stored syntaxes plus the two uncompressed ones,
    so that the destination can accept whatever it supports."""
    syntaxes: dict[str, list[str]] = {}
    for instance in instances:
        offered = syntaxes.setdefault(instance.sop_class_uid, [])
        for syntax in (instance.transfer_syntax_uid, ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            if syntax not in offered:
                offered.append(syntax)
    contexts = [build_context(sop_class, offered) for sop_class, offered in syntaxes.items()]
    return contexts[:_MAX_REQUESTED_CONTEXTS]


@dataclass(frozen=True)
class Pacing:
    """How like a real PACS the sample one sends: a wait before the first instance of each C-MOVE or
    C-GET, and at most so many bytes a second, so that what a gateway saves by not asking again shows
    on one machine."""

    latency_seconds: float = 0.0
    bytes_per_second: float | None = None

    def throttle(self, path: Path) -> None:
        if self.bytes_per_second:
            try:
                size = path.stat().st_size
            except OSError:
                return
            time.sleep(size / self.bytes_per_second)


class SamplePacsHandlers:
    """Echo, find, get, move and store against one :class:`InstanceStore`."""

    def __init__(self, store: InstanceStore, destinations: Mapping[str, tuple[str, int]],
                 pacing: Pacing | None = None) -> None:
        self.store = store
        self.destinations = dict(destinations)
        self.pacing = pacing or Pacing()

    def bindings(self) -> list[EventHandlerType]:
        return [
            (evt.EVT_C_ECHO, self.handle_echo),
            (evt.EVT_C_FIND, self.handle_find),
            (evt.EVT_C_GET, self.handle_get),
            (evt.EVT_C_MOVE, self.handle_move),
            (evt.EVT_C_STORE, self.handle_store),
            (evt.EVT_SOP_EXTENDED, self.handle_query_options),
        ]

    def handle_query_options(self, event: Event) -> dict[str, bytes]:
        """C-FIND extended negotiation (PS3.4 C.5.1.1.1), answered for what the matching here does:
        relational queries (a key of any level selects), and person names matched without regard to
        case (the fuzzy matching byte) when asked; no combined date-time or timezone adjustment."""
        agreed = {}
        app_info: dict[str, bytes] = event.app_info  # type: ignore[attr-defined]
        for sop_class_uid, asked in app_info.items():
            if sop_class_uid in _FIND_MODELS and asked:
                fuzzy = len(asked) > 2 and asked[2] == 1
                agreed[sop_class_uid] = bytes([1 if asked[0] == 1 else 0, 0, 1 if fuzzy else 0])
        return agreed

    def handle_echo(self, event: Event) -> int:
        LOGGER.info("C-ECHO from %s", _peer(event))
        return _SUCCESS

    def handle_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        try:
            identifier = event.identifier
            responses = find_responses(
                identifier,
                self.store.snapshot(),
                _levels(event),
                retrieve_aet=event.assoc.ae.ae_title,
            )
            LOGGER.info("C-FIND %s from %s", identifier.get("QueryRetrieveLevel", "?"), _peer(event))
            for response in responses:
                if event.is_cancelled:
                    yield _CANCEL, None
                    return
                yield _PENDING, response
        except InvalidIdentifier as exc:
            LOGGER.warning("C-FIND from %s refused: %s", _peer(event), exc)
            yield _IDENTIFIER_DOES_NOT_MATCH, None
            return
        except Exception:
            LOGGER.exception("C-FIND from %s failed", _peer(event))
            yield _CANNOT_UNDERSTAND, None
            return
        yield _SUCCESS, None

    def _select(self, event: Event) -> list[StoredInstance] | int:
        """The instances to send, or the failure status to answer with."""
        try:
            return instances_to_retrieve(event.identifier, self.store.snapshot(), _levels(event))
        except InvalidIdentifier as exc:
            LOGGER.warning("retrieve from %s refused: %s", _peer(event), exc)
            return _IDENTIFIER_DOES_NOT_MATCH
        except Exception:
            LOGGER.exception("retrieve from %s failed", _peer(event))
            return _CANNOT_UNDERSTAND

    def _send(self, event: Event, instances: list[StoredInstance]) -> Iterator[Any]:
        yield len(instances)
        # A real PACS takes its time before the first instance (a query of its archive, a tape).
        time.sleep(self.pacing.latency_seconds)
        for instance in instances:
            if event.is_cancelled:
                yield _CANCEL, None
                return
            dataset = _read(instance)
            self.pacing.throttle(instance.path)
            yield _PENDING, dataset

    def handle_get(self, event: Event) -> Iterator[Any]:
        selected = self._select(event)
        if isinstance(selected, int):
            yield from _refusal(selected)
            return
        LOGGER.info("C-GET of %d instances by %s", len(selected), _peer(event))
        yield from self._send(event, selected)

    def handle_move(self, event: Event) -> Iterator[Any]:
        destination = self.destinations.get((event.move_destination or "").strip())
        if destination is None:
            LOGGER.warning("C-MOVE from %s to unknown AET %r", _peer(event), event.move_destination)
            yield None, None  # pynetdicom answers 0xA801 Move Destination Unknown
            return
        selected = self._select(event)
        if isinstance(selected, int):
            # pynetdicom opens the sub-association before reading any status; keep it minimal.
            yield (*destination, {"contexts": [build_context(Verification)]})
            yield from _refusal(selected)
            return
        LOGGER.info(
            "C-MOVE of %d instances to %s by %s", len(selected), event.move_destination, _peer(event)
        )
        yield (*destination, {"contexts": _storage_contexts(selected)})
        yield from self._send(event, selected)

    def handle_store(self, event: Event) -> int:
        try:
            instance = self.store.add_bytes(event.encoded_dataset())
        except InvalidInstance as exc:
            LOGGER.warning("C-STORE from %s refused: %s", _peer(event), exc)
            return _IDENTIFIER_DOES_NOT_MATCH
        except OSError:
            LOGGER.exception("C-STORE from %s could not be written", _peer(event))
            return _OUT_OF_RESOURCES
        LOGGER.info("C-STORE %s from %s", instance.sop_uid, _peer(event))
        return _SUCCESS
