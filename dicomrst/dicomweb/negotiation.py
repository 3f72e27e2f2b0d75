"""What each DICOMweb resource can send, chosen from the client's Accept header (PS3.18 8.7): the policies
of QIDO-RS and WADO-RS metadata, instances, frames and bulk data, and the STOW-RS response. Parsing and the
general rules (invalid elements ignored, PS3.18 8.7.7) are in ``accept.py``.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from .accept import Ignored, MediaRange, NotAcceptable, negotiate, negotiate_ranges, parse_media_range
from .uids import is_known_transfer_syntax, is_valid_uid

__all__ = [
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "FrameRepresentation",
    "InstanceContainer",
    "InstanceRepresentation",
    "NotAcceptable",
    "QidoMediaType",
    "StowResponseType",
    "negotiate_bulkdata",
    "negotiate_frames",
    "negotiate_instances",
    "negotiate_metadata",
    "negotiate_qido",
    "negotiate_stow_response",
]


def _part_pattern(media_range: MediaRange) -> MediaRange | None:
    """The multipart `type` parameter as a media range (it may be a wildcard: `type="*/*"`), None when absent.

    Raises Ignored when it is no media type at all.
    """
    value = media_range.params.get("type")
    if value is None:
        return None
    pattern = parse_media_range(value)
    if pattern is None:
        raise Ignored(value)
    return pattern


def _part_type_matches(media_range: MediaRange, media_type: str) -> bool:
    """Whether a multipart range's parts may be `media_type`: no `type` parameter, or one that matches."""
    pattern = _part_pattern(media_range)
    return pattern is None or pattern.matches(media_type)


class QidoMediaType(enum.Enum):
    JSON = "application/dicom+json"
    XML = 'multipart/related; type="application/dicom+xml"'


def _choose_qido(media_range: MediaRange) -> QidoMediaType | None:
    essence = media_range.essence
    if essence in ("*/*", "application/*", "application/dicom+json", "application/json"):
        return QidoMediaType.JSON
    if essence in ("multipart/related", "multipart/*"):
        # PS3.18 requires the type parameter; its absence is tolerated because
        # XML is the only multipart representation QIDO-RS has.
        if _part_type_matches(media_range, "application/dicom+xml"):
            return QidoMediaType.XML
    return None


def negotiate_qido(accept: str | None) -> QidoMediaType:
    """Pick the QIDO-RS response representation for an Accept header.

    Raises NotAcceptable (406).
    """
    return negotiate(accept, _choose_qido, [m.value for m in QidoMediaType])


# --- WADO-RS (PS3.18 8.7.3) ----------------------------------------------------------------------

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

_ANY_TRANSFER_SYNTAX = "*"
_DICOM = "application/dicom"
_OCTET_STREAM = "application/octet-stream"
_MULTIPART = ("multipart/related", "multipart/*")

InstanceContainer = Literal["multipart", "single", "zip"]


@dataclass(frozen=True)
class InstanceRepresentation:
    """How to send DICOM instances: the container and, in the client's preference order, the
    transfer syntax UIDs it accepts ("*" means as stored)."""

    container: InstanceContainer
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True)
class FrameRepresentation:
    """The media type of each frame part, and whether frames must be decoded to produce it."""

    media_type: str
    decompress: bool




def _transfer_syntax(media_range: MediaRange) -> str | None:
    """The range's transfer-syntax parameter, Explicit VR Little Endian when absent (PS3.18 8.7.3.5.2).

    None for a UID pydicom does not know as a transfer syntax: such a range names nothing this
    server could ever produce, so it is skipped like an unknown media type. A value that is no UID
    at all is not valid: the range is ignored (Ignored, PS3.18 8.7.7).
    """
    value = media_range.params.get("transfer-syntax")
    if value is None:
        return EXPLICIT_VR_LITTLE_ENDIAN
    value = value.strip()
    if value == _ANY_TRANSFER_SYNTAX:
        return value
    if not is_valid_uid(value):
        raise Ignored(value)
    return value if is_known_transfer_syntax(value) else None


def _instance_container(media_range: MediaRange, single_instance: bool) -> InstanceContainer | None:
    essence = media_range.essence
    if essence in _MULTIPART:
        # PS3.18 requires the type parameter; without it, application/dicom is the only reading
        # that makes sense for an instance resource. A wildcard type (`type="*/*"`) includes it.
        return "multipart" if _part_type_matches(media_range, _DICOM) else None
    if essence in ("*/*", "application/*"):
        return "multipart"
    if essence == _DICOM:
        # A bare application/dicom can carry only one instance; for a study or series it is
        # taken as the multipart form the client most likely meant.
        return "single" if single_instance else "multipart"
    if essence == "application/zip":
        return "zip"
    return None


def _instance_types(single_instance: bool) -> list[str]:
    single = [_DICOM] if single_instance else []
    return [f'multipart/related; type="{_DICOM}"', *single, "application/zip"]


def _instance_representation(ranges: list[MediaRange], single_instance: bool) -> tuple[InstanceRepresentation | None, bool]:
    container: InstanceContainer | None = None
    syntaxes: list[str] = []
    ignored = False
    for media_range in ranges:
        try:
            candidate = _instance_container(media_range, single_instance)
            if candidate is None:
                continue
            syntax = _transfer_syntax(media_range)
        except Ignored:
            ignored = True
            continue
        if syntax is None or container not in (None, candidate):
            continue
        container = candidate
        if syntax not in syntaxes:
            syntaxes.append(syntax)
    return (None if container is None else InstanceRepresentation(container, tuple(syntaxes))), ignored


def negotiate_instances(accept: str | None, single_instance: bool) -> InstanceRepresentation:
    """Pick the container and acceptable transfer syntaxes for a WADO-RS instance retrieval.

    The highest-q range the server understands picks the container; every range for that same
    container adds its transfer syntax, in q order. `single_instance` says whether the resource is
    one instance (only then can a bare application/dicom body be sent).
    Raises NotAcceptable (406).
    """
    return negotiate_ranges(accept, lambda ranges: _instance_representation(ranges, single_instance),
                      _instance_types(single_instance))


def _as_octet_stream(native_media_type: str) -> FrameRepresentation:
    return FrameRepresentation(_OCTET_STREAM, decompress=native_media_type.lower() != _OCTET_STREAM)


def _choose_frames(media_range: MediaRange, native_media_type: str) -> FrameRepresentation | None:
    native = FrameRepresentation(native_media_type, decompress=False)
    if media_range.essence == "*/*":
        return native
    if media_range.essence not in _MULTIPART:
        return None
    pattern = _part_pattern(media_range)
    syntax = _transfer_syntax(media_range)
    if pattern is None:
        return native
    if syntax is None:
        return None
    raw_possible = pattern.matches(_OCTET_STREAM) and syntax in (_ANY_TRANSFER_SYNTAX, EXPLICIT_VR_LITTLE_ENDIAN)
    if pattern.subtype == "*":
        # `type="*/*"` (or "image/*", "application/*"): as stored when the wildcard covers the native
        # type, unless Explicit VR Little Endian is named, which only raw frames are.
        explicit_raw = media_range.params.get("transfer-syntax", "").strip() == EXPLICIT_VR_LITTLE_ENDIAN
        if pattern.matches(native_media_type) and not (explicit_raw and raw_possible):
            return native
        return _as_octet_stream(native_media_type) if raw_possible else None
    if pattern.essence == _OCTET_STREAM:
        # Raw frames exist in one transfer syntax only.
        return _as_octet_stream(native_media_type) if raw_possible else None
    if pattern.essence == native_media_type.lower():
        return native
    return None


def negotiate_frames(accept: str | None, native_media_type: str) -> FrameRepresentation:
    """Pick the frame media type for a WADO-RS frames retrieval (PS3.18 8.7.3.5.3).

    `native_media_type` is the media type of the stored frames (`frames.frame_media_type`).
    Frames are sent as stored, or decoded to application/octet-stream; never re-encoded.
    Raises NotAcceptable (406).
    """
    native = native_media_type.lower()
    available = [f'multipart/related; type="{native_media_type}"']
    if native != _OCTET_STREAM:
        available.append(f'multipart/related; type="{_OCTET_STREAM}"')
    return negotiate(accept, lambda media_range: _choose_frames(media_range, native_media_type), available)


def _choose_bulkdata(media_range: MediaRange) -> bool | None:
    essence = media_range.essence
    if essence in ("*/*", _OCTET_STREAM):
        return True
    if essence in _MULTIPART and _part_type_matches(media_range, _OCTET_STREAM):
        return True
    return None


def negotiate_bulkdata(accept: str | None) -> None:
    """Check that the client takes bulk data as multipart/related application/octet-stream parts.

    Raises NotAcceptable (406).
    """
    negotiate(accept, _choose_bulkdata, [f'multipart/related; type="{_OCTET_STREAM}"'])


class StowResponseType(enum.Enum):
    JSON = "application/dicom+json"
    XML = "application/dicom+xml"


def _choose_stow_response(media_range: MediaRange) -> StowResponseType | None:
    if media_range.essence in ("*/*", "application/*", "application/dicom+json", "application/json"):
        return StowResponseType.JSON
    if media_range.essence == "application/dicom+xml":
        return StowResponseType.XML
    return None


def negotiate_stow_response(accept: str | None) -> StowResponseType:
    """The Store Instances Response Module as DICOM JSON (default) or as one Native DICOM Model
    document (PS3.18 10.5.3)."""
    return negotiate(accept, _choose_stow_response, [m.value for m in StowResponseType])


def negotiate_metadata(accept: str | None) -> QidoMediaType:
    """WADO-RS metadata (PS3.18 8.7.3.5.1): DICOM JSON by default, or the Native DICOM Model in
    multipart/related: the same two representations, and the same rules, as a QIDO-RS answer."""
    return negotiate_qido(accept)
