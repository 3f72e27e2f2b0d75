"""QIDO-RS over C-FIND with right rows from any PACS.

A PACS that did not agree to relational queries (PS3.4 C.5.1.1.1) ignores keys above the query level,
and an optional key it does not support matches everything (PS3.4 C.2.2.2, C.4.1.2). So without that
agreement a search is split the hierarchical way (PS3.4 C.4.1.2.1): a C-FIND per level, from the study
down, each with the keys of its own level and the unique keys of the entity above; the rows of the
lower level carry the attributes of their parents. Whatever the PACS agreed to, every row is then
checked against every matching key with the matching engine: a row that fails is dropped, and a key
the PACS gave no attribute for cannot be checked and is named in a Warning (PS3.18 8.3.4).

The study list's attributes a PACS may leave out (ModalitiesInStudy, the related counts) are computed
from the levels below when ``qido-rs.complete-attributes`` is on: one series-level C-FIND per study
that lacks them, and an instance-level C-FIND per series whose count is missing.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace

from pydicom import Dataset
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pynetdicom import Association

from dicomrst.backends.base import SearchNotes
from dicomrst.backends.dimse.find import find
from dicomrst.backends.dimse.identifier import cfind_identifier, set_key
from dicomrst.dicomweb.charset import UTF8_CHARSET
from dicomrst.dicomweb.qido_attributes import (
    INSTANCE_ALL,
    INSTANCE_DEFAULTS,
    SERIES_ALL,
    SERIES_DEFAULT_SEQUENCES,
    SERIES_DEFAULTS,
    STUDY_ALL,
    STUDY_DEFAULTS,
)
from dicomrst.dicomweb.query import KeyPath, MatchingKey, QidoQuery, QueryLevel
from dicomrst.dicomweb.unconverted import has_value
from dicomrst.matching import unmatched_keys

_LEVELS = (QueryLevel.STUDY, QueryLevel.SERIES, QueryLevel.IMAGE)
_UNIQUE = {QueryLevel.STUDY: 0x0020000D, QueryLevel.SERIES: 0x0020000E, QueryLevel.IMAGE: 0x00080018}
_MODALITIES_IN_STUDY = 0x00080061
_STUDY_SERIES, _STUDY_INSTANCES = 0x00201206, 0x00201208
_SERIES_INSTANCES = 0x00201209
_MODALITY = 0x00080060
_COMPUTED_STUDY = (_MODALITIES_IN_STUDY, _STUDY_SERIES, _STUDY_INSTANCES)
_BOOKKEEPING = frozenset({0x00080005, 0x00080052})


def _level_table() -> dict[int, QueryLevel]:
    """The level each attribute belongs to in the Study Root model (patient attributes at the study's)."""
    table: dict[int, QueryLevel] = {}
    for level, keywords in ((QueryLevel.STUDY, STUDY_DEFAULTS + STUDY_ALL),
                            (QueryLevel.SERIES, SERIES_DEFAULTS + SERIES_ALL + tuple(SERIES_DEFAULT_SEQUENCES)),
                            (QueryLevel.IMAGE, INSTANCE_DEFAULTS + INSTANCE_ALL)):
        for keyword in keywords:
            tag = tag_for_keyword(keyword)
            if tag is not None:
                table.setdefault(tag, level)
    return table


_LEVEL_OF = _level_table()


def level_of(path: KeyPath, query_level: QueryLevel) -> QueryLevel:
    """An attribute's level; one no table places is taken at the level of the query."""
    level = _LEVEL_OF.get(path[0], query_level)
    return level if _LEVELS.index(level) <= _LEVELS.index(query_level) else query_level


class HierarchicalSearch:
    """One QIDO-RS search on one association: split by level unless ``relational``, rows checked."""

    def __init__(self, association: Association, query: QidoQuery, timeout: float, relational: bool,
                 complete_attributes: bool, notes: SearchNotes) -> None:
        self.association = association
        self.query = query
        self.timeout = timeout
        self.relational = relational
        self.complete_attributes = complete_attributes
        self.notes = notes
        self._read_ahead: deque[Dataset] = deque()

    def rows(self) -> Iterator[Dataset]:
        rows = self._relational() if self.relational else self._split()
        if self._needs_study_completion():
            rows = self._completed(list(rows), self._complete_study)
        elif self._needs_series_completion():
            rows = self._completed(list(rows), self._complete_series)
        return self._checked(rows)

    def next_ready(self) -> bool:
        """Whether the next row can come without waiting for the PACS: rows read ahead for completion
        remain (completing one may still ask the PACS), or its next C-FIND response has arrived
        (pynetdicom's queue of the DIMSE messages received)."""
        return bool(self._read_ahead) or not self.association.dimse.msg_queue.empty()

    def _completed(self, rows: list[Dataset], complete: Callable[[Dataset], Dataset]) -> Iterator[Dataset]:
        self._read_ahead = deque(rows)
        while self._read_ahead:
            yield complete(self._read_ahead.popleft())

    # ------------------------------------------------------------------------------------- finding

    def _find(self, identifier: Dataset) -> Iterator[Dataset]:
        if "SpecificCharacterSet" not in identifier:
            # A PACS answers in the character set of the request where it can (Orthanc does, and
            # otherwise falls back to Latin-1, losing every ideographic name); UTF-8 holds them all.
            identifier.SpecificCharacterSet = UTF8_CHARSET
        return find(self.association, identifier, self.timeout)

    def _relational(self) -> Iterator[Dataset]:
        return self._find(cfind_identifier(self.query))

    def _split(self) -> Iterator[Dataset]:
        levels = _LEVELS[: _LEVELS.index(self.query.level) + 1]
        start, parent = self._known_parents(levels)
        return self._level_rows(levels, start, parent)

    def _known_parents(self, levels: tuple[QueryLevel, ...]) -> tuple[int, Dataset]:
        """Skip the levels above whose unique key the query gives as one value and which it asks
        nothing else of: the search starts below them with those UIDs as the parent's."""
        parent = Dataset()
        start = 0
        for index, level in enumerate(levels[:-1]):
            uid = self._single_value(_UNIQUE[level])
            asks_more = self._level_keys(level, levels[-1], exclude_unique=True) or any(
                level_of(path, levels[-1]) is level and path != (_UNIQUE[level],) for path in self.query.return_keys)
            if uid is None or asks_more:
                break
            setattr(parent, keyword_for_tag(_UNIQUE[level]), uid)
            start = index + 1
        return start, parent

    def _single_value(self, tag: int) -> str | None:
        key = next((k for k in self.query.matching if k.path == (tag,)), None)
        return key.value if key is not None and isinstance(key.value, str) else None

    def _level_keys(self, level: QueryLevel, query_level: QueryLevel, exclude_unique: bool) -> list[MatchingKey]:
        return [key for key in self.query.matching if key.value is not None and level_of(key.path, query_level) is level
                and not (exclude_unique and key.path == (_UNIQUE[level],))]

    def _level_query(self, level: QueryLevel) -> QidoQuery:
        query_level = self.query.level
        matching = tuple(key for key in self.query.matching if level_of(key.path, query_level) is level)
        return_keys = tuple(path for path in self.query.return_keys if level_of(path, query_level) is level)
        return replace(self.query, level=level, matching=matching, return_keys=return_keys)

    def _level_rows(self, levels: tuple[QueryLevel, ...], index: int, parent: Dataset) -> Iterator[Dataset]:
        level = levels[index]
        identifier = cfind_identifier(self._level_query(level))
        unique = keyword_for_tag(_UNIQUE[level])
        if unique not in identifier:
            setattr(identifier, unique, "")  # each level's unique key is always a key (PS3.4 C.4.1.2.1)
        for above in levels[:index]:  # PS3.4 C.4.1.2.1: the unique keys of the levels above
            setattr(identifier, keyword_for_tag(_UNIQUE[above]), getattr(parent, keyword_for_tag(_UNIQUE[above])))
        if index == len(levels) - 1:
            matches = self._find(identifier)
            try:
                for match in matches:
                    yield _merged(parent, match)
            finally:
                _close(matches)  # the consumer stopped early: find() cancels the C-FIND
            return
        # The association does one C-FIND at a time: this level's rows are read before going down.
        for match in list(self._find(identifier)):
            yield from self._level_rows(levels, index + 1, _merged(parent, match))

    # ----------------------------------------------------------------------------------- completion

    def _wanted(self, tag: int) -> bool:
        return any(path == (tag,) for path in self.query.return_keys) or any(
            key.path == (tag,) for key in self.query.matching)

    def _needs_study_completion(self) -> bool:
        return (self.complete_attributes and self.query.level is QueryLevel.STUDY
                and any(self._wanted(tag) for tag in _COMPUTED_STUDY))

    def _needs_series_completion(self) -> bool:
        return self.complete_attributes and self.query.level is QueryLevel.SERIES and self._wanted(_SERIES_INSTANCES)

    def _complete_study(self, row: Dataset) -> Dataset:
        missing = [tag for tag in _COMPUTED_STUDY if self._wanted(tag) and not has_value(row, tag)]
        if not missing or not row.get("StudyInstanceUID"):
            return row
        series = Dataset()
        series.QueryRetrieveLevel = "SERIES"
        series.StudyInstanceUID = row.StudyInstanceUID
        series.SeriesInstanceUID = ""
        series.Modality = ""
        series.NumberOfSeriesRelatedInstances = None
        found = list(self._find(series))
        if _MODALITIES_IN_STUDY in missing:
            row.ModalitiesInStudy = sorted({str(s.get("Modality", "")) for s in found} - {""})
        if _STUDY_SERIES in missing:
            row.NumberOfStudyRelatedSeries = len(found)
        if _STUDY_INSTANCES in missing:
            row.NumberOfStudyRelatedInstances = sum(self._series_count(row.StudyInstanceUID, s) for s in found)
        return row

    def _complete_series(self, row: Dataset) -> Dataset:
        if has_value(row, _SERIES_INSTANCES) or not row.get("StudyInstanceUID"):
            return row
        row.NumberOfSeriesRelatedInstances = self._series_count(row.StudyInstanceUID, row)
        return row

    def _series_count(self, study_uid: str, series: Dataset) -> int:
        if has_value(series, _SERIES_INSTANCES):
            return int(series.NumberOfSeriesRelatedInstances)
        instances = Dataset()
        instances.QueryRetrieveLevel = "IMAGE"
        instances.StudyInstanceUID = study_uid
        instances.SeriesInstanceUID = series.SeriesInstanceUID
        instances.SOPInstanceUID = ""
        return sum(1 for _ in self._find(instances))

    # --------------------------------------------------------------------------------------- checks

    def _checked(self, rows: Iterator[Dataset]) -> Iterator[Dataset]:
        """Drop what fails a matching key. The keys the first row has no attribute for are the keys the
        PACS does not apply: named in a Warning, and not claimed; a later row that lacks an attribute
        the first row had cannot be shown to match and is dropped."""
        keys = Dataset()
        for key in self.query.matching:
            if key.value is not None:
                set_key(keys, key.path, key.value)
        try:
            yield from (self._passing(rows, keys) if len(keys) else rows)
        finally:
            _close(rows)  # ends the C-FIND under way (find() cancels it)

    def _passing(self, rows: Iterator[Dataset], keys: Dataset) -> Iterator[Dataset]:
        not_applied: set[int] | None = None
        for row in rows:
            failed, unknown = unmatched_keys(keys, row)
            if not_applied is None:
                not_applied = set(unknown)
                if not_applied:
                    named = ", ".join(keyword_for_tag(tag) or f"{tag:08X}" for tag in sorted(not_applied))
                    self.notes.warn(f"The PACS returned no value for {named}, so these keys were not applied.")
            if failed or set(unknown) - not_applied:
                continue
            yield row


def _close(items: Iterator[Dataset]) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()


def _merged(parent: Dataset, child: Dataset) -> Dataset:
    if not parent:
        return child  # one C-FIND for the whole search: its answers are the rows as they are
    row = Dataset()
    for element in parent:
        if int(element.tag) not in _BOOKKEEPING:
            row.add(element)
    for element in child:
        row.add(element)
    return row
