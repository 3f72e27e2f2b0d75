"""C-STORE for STOW-RS: instances sent from their files over one association per request, proposing
what the first instance needs and renegotiated only when an instance needs a presentation context the
association lacks.

A PACS that accepts the association but none of the proposed storage SOP classes (a read-only AE, say)
is no failure of the request: each instance is reported refused (0x0122, SOP class not supported), and a
proposal it answered so is not made again for the instances that follow."""
from __future__ import annotations

import logging
import tempfile
from contextlib import ExitStack
from collections.abc import Sequence
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import Association
from pynetdicom.presentation import StoragePresentationContexts

from dicomrst.backends.base import BackendError, StoreOutcome, StoreSession
from dicomrst.backends.dimse.association import NoContextsAccepted, Peer, open_association
from dicomrst.backends.dimse.slots import AssociationSlots
from dicomrst.backends.dimse.statuses import StoreStatus, is_store_warning
from dicomrst.dicomweb.stow import (
    FAILURE_OUT_OF_RESOURCES,
    FAILURE_PROCESSING,
    FAILURE_SOP_CLASS_NOT_SUPPORTED,
    FAILURE_TRANSFER_SYNTAX_NOT_SUPPORTED,
    WARNING_COERCION,
    UploadedInstance,
)
from dicomrst.dicomweb.transcode import NATIVE_TRANSFER_SYNTAXES, TranscodeError, transcode
from dicomrst.metrics import dimse_operation

log = logging.getLogger(__name__)

# Sent from the file as they are, these syntaxes reach the PACS undecodable (seen with Orthanc: implicit
# and big endian refused with Error: Data Set Does Not Match SOP Class, deflated never answered), so
# such instances are decoded and re-encoded by pynetdicom instead.
_DECODED_BEFORE_SENDING = NATIVE_TRANSFER_SYNTAXES - {ExplicitVRLittleEndian}

EXPLICIT_VR_LITTLE_ENDIAN = str(ExplicitVRLittleEndian)
MAX_CONTEXTS = 128

Pair = tuple[str, str]  # (SOP class, transfer syntax): one presentation context each
_COMMON_PAIRS: list[Pair] = [(str(c.abstract_syntax), EXPLICIT_VR_LITTLE_ENDIAN) for c in StoragePresentationContexts]


class DimseStoreSession(StoreSession):
    """The association (and the pool slot it takes) is held only while there is something to store:
    ``pause`` gives both back while the client is slow to send the next part, and the next ``store``
    takes them again, proposing what was proposed before. An association the PACS dropped meanwhile
    (its idle limit) is opened again the same way, so no later instance fails for it."""

    def __init__(self, peer: Peer, timeout_seconds: float, aet: str, slots: AssociationSlots | None = None,
                 slot_timeout_seconds: float = 0.0) -> None:
        self.peer = peer
        self.aet = aet
        self.timeout_seconds = timeout_seconds
        self.slots = slots
        self.slot_timeout_seconds = slot_timeout_seconds
        self._stack = ExitStack()
        self._slot = ExitStack()
        self._holding_slot = False
        self._association: Association | None = None
        self._proposed: list[Pair] = []
        self._accepted: set[Pair] = set()
        # The PACS answered the current proposal: with an association, or by accepting none of it.
        self._answered = False
        self._refused_all = False

    def open(self, like: Sequence[UploadedInstance] = ()) -> None:
        """Associate at once, so a PACS that is down (or busy) is known before more of the body is read:
        proposing the classes and syntaxes of the instances `like` these (each with its uncompressed
        fallback) when some are known, else the common storage classes in Explicit VR Little
        Endian. An instance of another class or syntax renegotiates (``_ensure_context``)."""
        self._take_slot()
        if not like:
            self._associate(_COMMON_PAIRS)
            return
        pairs: list[Pair] = []
        for instance in like:
            for pair in ((instance.sop_class_uid, instance.transfer_syntax_uid),
                         (instance.sop_class_uid, EXPLICIT_VR_LITTLE_ENDIAN)):
                if pair not in pairs:
                    pairs.append(pair)
        self._associate(pairs)

    def pause(self) -> None:
        if self._association is not None or self._holding_slot:
            log.debug("STOW-RS to %s idle: association and slot given back", self.peer)
        self._release_association()
        self._release_slot()

    def close(self) -> None:
        self._release_association()
        self._release_slot()

    def _take_slot(self) -> None:
        if self.slots is not None and not self._holding_slot:
            self._slot = ExitStack()
            self._slot.enter_context(self.slots.hold(self.slot_timeout_seconds))
            self._holding_slot = True

    def _release_slot(self) -> None:
        self._slot.close()
        self._holding_slot = False

    def _release_association(self) -> None:
        self._stack.close()
        self._association = None
        self._answered = False

    def _ensure_open(self) -> None:
        """Associate again after a pause, or after the PACS dropped the association."""
        if self._association is not None and self._association.is_established:
            return
        if self._refused_all and self._answered:
            return  # the PACS accepted none of the proposal: each instance is refused, not retried
        self._take_slot()
        self._associate(self._proposed or _COMMON_PAIRS)

    def _associate(self, pairs: list[Pair]) -> None:
        self._release_association()
        self._stack = ExitStack()
        self._refused_all = False
        proposed = pairs[:MAX_CONTEXTS - 1]
        contexts = [(sop_class, [transfer_syntax]) for sop_class, transfer_syntax in proposed]
        self._proposed = proposed
        self._accepted = set()
        try:
            self._association = self._stack.enter_context(open_association(self.peer, contexts, self.timeout_seconds))
        except NoContextsAccepted as refusal:
            log.warning("%s accepted none of the %d proposed storage SOP classes and transfer syntaxes: %s",
                        self.peer, len(proposed), refusal)
            self._answered = True
            self._refused_all = True
            return
        self._answered = True
        self._accepted = {
            (str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in self._association.accepted_contexts
        }

    def _ensure_context(self, pair: Pair) -> None:
        """Renegotiate when the association never proposed this class and syntax; the pairs needed
        so far come along, with the uncompressed fallback for the class, and the common classes, so
        that a body of several classes renegotiates about once and not once per class."""
        if pair in self._accepted or (pair in self._proposed and self._answered):
            return
        fallback = (pair[0], EXPLICIT_VR_LITTLE_ENDIAN)
        wanted = [pair, fallback]
        rest = [p for p in self._proposed if p not in wanted]
        common = [p for p in _COMMON_PAIRS if p not in wanted and p not in rest]
        log.debug("renegotiating with %s for %s", self.peer, pair)
        self._associate(wanted + rest + common)

    def store(self, instance: UploadedInstance) -> StoreOutcome:
        pair = (instance.sop_class_uid, instance.transfer_syntax_uid)
        try:
            self._ensure_open()
            self._ensure_context(pair)
        except BackendError as error:
            log.warning("cannot store %s: %s", instance.sop_instance_uid, error)
            return StoreOutcome(False, FAILURE_OUT_OF_RESOURCES)
        if pair in self._accepted:
            if instance.transfer_syntax_uid in _DECODED_BEFORE_SENDING:
                return self._send(dcmread(instance.path), None)
            return self._send(instance.path, None)
        if (instance.sop_class_uid, EXPLICIT_VR_LITTLE_ENDIAN) in self._accepted:
            return self._send_transcoded(instance)
        refused_class = not any(sop_class == instance.sop_class_uid for sop_class, _ in self._accepted)
        return StoreOutcome(False, FAILURE_SOP_CLASS_NOT_SUPPORTED if refused_class else FAILURE_TRANSFER_SYNTAX_NOT_SUPPORTED)

    def _send_transcoded(self, instance: UploadedInstance) -> StoreOutcome:
        """The PACS refused the instance's (compressed) syntax: send it uncompressed, and say so."""
        try:
            decoded = transcode(instance.path.read_bytes(), EXPLICIT_VR_LITTLE_ENDIAN)
        except TranscodeError as error:
            log.warning("cannot transcode %s for %s: %s", instance.sop_instance_uid, self.peer, error)
            return StoreOutcome(False, FAILURE_TRANSFER_SYNTAX_NOT_SUPPORTED)
        with tempfile.NamedTemporaryFile(prefix="dicomrst-stow-", suffix=".dcm") as handle:
            handle.write(decoded)
            handle.flush()
            del decoded
            return self._send(Path(handle.name), WARNING_COERCION)

    def _send(self, source: Path | Dataset, warning: int | None) -> StoreOutcome:
        association = self._association
        if association is None or not association.is_established:
            return StoreOutcome(False, FAILURE_PROCESSING)
        try:
            with dimse_operation(self.aet, "C-STORE"):
                status = association.send_c_store(source)
        except (ValueError, RuntimeError) as error:
            log.warning("C-STORE to %s not sent: %s", self.peer, error)
            return StoreOutcome(False, FAILURE_PROCESSING)
        if "Status" not in status:
            # Timed out or aborted: the association is gone; the next instance opens a new one.
            log.warning("no C-STORE response from %s within %g s", self.peer, self.timeout_seconds)
            self._association = None
            self._answered = False
            self._proposed = []
            self._accepted = set()
            return StoreOutcome(False, FAILURE_OUT_OF_RESOURCES)
        code = int(status.Status)
        if code == StoreStatus.SUCCESS:
            return StoreOutcome(True, warning)
        if is_store_warning(code):  # stored nonetheless (PS3.4 B.2.3)
            return StoreOutcome(True, code)
        log.warning("%s refused an instance with status 0x%04X", self.peer, code)
        return StoreOutcome(False, code)
