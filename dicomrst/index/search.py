"""QIDO-RS over the index: a ``QidoQuery`` as SQL, its answers as the C-FIND response datasets a PACS
would give (the web layer makes them DICOM JSON or XML as for a PACS).

An entity (study, series, instance) matches when one of its instances matches every key, so a series
key on a study search selects the studies holding such a series (relational matching, PS3.4 C.4.1.3.2),
and its attributes come from the first such instance. Keys on indexed attributes, the UIDs and
ModalitiesInStudy / SOPClassesInStudy are matched in SQL, with ``offset`` and ``limit``; any other key
(sequence keys, attributes not indexed) is matched on the instance's header with ``dicomrst.matching``,
and then paging is done here. Entities come in the order they were first indexed.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from sqlalchemy import ColumnElement, distinct, func, select
from sqlalchemy.engine import Connection

from dicomrst.dicomweb.query import KeyPath, MatchingKey, QidoQuery, QueryLevel, vr_of
from dicomrst.index.headers import COMPUTED_KEYWORDS, header_json
from dicomrst.index.schema import attribute_values, instances
from dicomrst.index.values import key_condition
from dicomrst.matching import unmatched_keys

_STUDY_UID, _SERIES_UID, _SOP_UID = 0x0020000D, 0x0020000E, 0x00080018
_UID_COLUMNS = {_STUDY_UID: instances.c.study_uid, _SERIES_UID: instances.c.series_uid, _SOP_UID: instances.c.sop_uid}
_UNIQUE = {QueryLevel.STUDY: _STUDY_UID, QueryLevel.SERIES: _SERIES_UID, QueryLevel.IMAGE: _SOP_UID}
# Study attributes listing what the study's instances hold: matched on the instances' own attribute.
_LISTS = {"ModalitiesInStudy": "Modality", "SOPClassesInStudy": "SOPClassUID"}
_CONSTANT = {"InstanceAvailability": ("CS", "ONLINE")}  # every object of a bucket is online


@dataclass(frozen=True)
class Bucket:
    """Which rows a search sees, and what it says of them."""

    name: str
    retrieve_aet: str
    indexed_tags: frozenset[int]


def _keys_of(value: Any) -> list[str]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return [str(v) for v in values if str(v) != ""]


def search(connection: Connection, bucket: Bucket, query: QidoQuery) -> Iterator[Dataset]:
    unique = _UID_COLUMNS[_UNIQUE[query.level]]
    conditions: list[ColumnElement[bool]] = [instances.c.bucket == bucket.name]
    residual: list[MatchingKey] = []
    dialect = connection.dialect.name
    for key in query.matching:
        if key.value is None:
            continue
        tag = key.path[0]
        keyword = keyword_for_tag(tag)
        if len(key.path) > 1:
            residual.append(key)
        elif tag in _UID_COLUMNS:
            conditions.append(_UID_COLUMNS[tag].in_(_keys_of(key.value)))
        elif keyword in _LISTS:
            conditions.append(_study_holding(bucket, _LISTS[keyword], _keys_of(key.value), dialect))
        elif keyword in COMPUTED_KEYWORDS and keyword not in _CONSTANT:
            continue  # counts and RetrieveAETitle are return keys only, as on the sample PACS
        elif tag in bucket.indexed_tags:
            conditions.append(_holding(tag, vr_of(tag, matching=True), _keys_of(key.value), dialect))
        else:
            residual.append(key)
    if residual:
        matches = _matched_here(connection, conditions, unique, residual, bucket, query)
    else:
        matches = _matched_in_sql(connection, conditions, unique, query)
    yield from _responses(connection, bucket, query, matches)


def _holding(tag: int, vr: str, keys: list[str], dialect: str) -> ColumnElement[bool]:
    held = select(attribute_values.c.instance_id).where(attribute_values.c.tag == tag,
                                                         key_condition(vr, keys, dialect))
    return instances.c.id.in_(held)


def _study_holding(bucket: Bucket, keyword: str, keys: list[str], dialect: str) -> ColumnElement[bool]:
    tag = tag_for_keyword(keyword)
    assert tag is not None
    other = instances.alias("holder")
    held = select(attribute_values.c.instance_id).where(attribute_values.c.tag == tag,
                                                         key_condition(dictionary_VR(tag), keys, dialect))
    studies = select(other.c.study_uid).where(other.c.bucket == bucket.name, other.c.id.in_(held))
    return instances.c.study_uid.in_(studies)


def _matched_in_sql(connection: Connection, conditions: list[ColumnElement[bool]], unique: Any,
                    query: QidoQuery) -> list[Any]:
    first = func.min(instances.c.id)
    page = select(first).where(*conditions).group_by(unique).order_by(first).offset(query.offset)
    if query.limit is not None:
        page = page.limit(query.limit)
    ids = [row[0] for row in connection.execute(page)]
    if not ids:
        return []
    rows = {row.id: row for row in connection.execute(select(instances).where(instances.c.id.in_(ids)))}
    return [rows[i] for i in ids]


def _matched_here(connection: Connection, conditions: list[ColumnElement[bool]], unique: Any,
                  residual: list[MatchingKey], bucket: Bucket, query: QidoQuery) -> list[Any]:
    keys = Dataset()
    for key in residual:
        _set_key(keys, key.path, key.value)
    seen: set[str] = set()
    matches: list[Any] = []
    stop = None if query.limit is None else query.offset + query.limit
    candidates = connection.execute(select(instances).where(*conditions).order_by(instances.c.id))
    for row in candidates:
        entity = getattr(row, unique.name)
        if entity in seen:
            continue
        header = Dataset.from_json(header_json(row.header))
        for keyword, (_vr, value) in _CONSTANT.items():
            setattr(header, keyword, value)
        failed, unknown = unmatched_keys(keys, header)
        if failed or unknown:  # an instance lacking the attribute does not match it (as on the sample PACS)
            continue
        seen.add(entity)
        matches.append(row)
        if stop is not None and len(matches) >= stop:
            break
    return matches[query.offset:]


def _set_key(dataset: Dataset, path: KeyPath, value: Any) -> None:
    for tag in path[:-1]:
        if tag not in dataset:
            dataset[tag] = DataElement(tag, "SQ", [Dataset()])
        dataset = dataset[tag].value[0]
    dataset[path[-1]] = DataElement(path[-1], vr_of(path[-1], matching=True), value)


def _responses(connection: Connection, bucket: Bucket, query: QidoQuery, matches: list[Any]) -> Iterator[Dataset]:
    if not matches:
        return
    tags = list(dict.fromkeys([path[0] for path in query.return_keys] + [key.path[0] for key in query.matching]))
    computed = _Computed(connection, bucket, {keyword_for_tag(tag) for tag in tags}, matches)
    # The character set the values were decoded with, and the unique key of the level, as the sample PACS.
    wanted = {f"{tag:08X}" for tag in tags} | {"00080005", f"{_UNIQUE[query.level]:08X}"}
    for row in matches:
        header = header_json(row.header)
        response = Dataset.from_json({hex_tag: element for hex_tag, element in header.items() if hex_tag in wanted})
        for tag in tags:
            keyword = keyword_for_tag(tag)
            if keyword in COMPUTED_KEYWORDS:
                value = computed.value(keyword, row) if keyword != "RetrieveAETitle" else bucket.retrieve_aet
                response[tag] = DataElement(tag, dictionary_VR(tag), value)
            elif tag not in response:
                # Asked for but not held: returned empty, as PS3.4 C.2.2.1.3 requires.
                vr = vr_of(tag)
                response[tag] = DataElement(tag, vr, [] if vr == "SQ" else None)
        response.QueryRetrieveLevel = query.level.value
        yield response


class _Computed:
    """The attributes computed from an entity's instances, for the page's entities, one query each."""

    def __init__(self, connection: Connection, bucket: Bucket, keywords: set[str | None],
                 matches: Sequence[Any]) -> None:
        self.values: dict[tuple[str, str], Any] = {}
        studies = sorted({row.study_uid for row in matches})
        series = sorted({row.series_uid for row in matches})
        patients = sorted({row.patient_id for row in matches})
        in_bucket = instances.c.bucket == bucket.name
        if keywords & {"NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"}:
            for study, series_count, instance_count in connection.execute(
                    select(instances.c.study_uid, func.count(distinct(instances.c.series_uid)), func.count())
                    .where(in_bucket, instances.c.study_uid.in_(studies)).group_by(instances.c.study_uid)):
                self.values["NumberOfStudyRelatedSeries", study] = series_count
                self.values["NumberOfStudyRelatedInstances", study] = instance_count
        if "NumberOfSeriesRelatedInstances" in keywords:
            for one, count in connection.execute(
                    select(instances.c.series_uid, func.count()).where(in_bucket, instances.c.series_uid.in_(series))
                    .group_by(instances.c.series_uid)):
                self.values["NumberOfSeriesRelatedInstances", one] = count
        if keywords & {"NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries",
                       "NumberOfPatientRelatedInstances"}:
            for patient, study_count, series_count, instance_count in connection.execute(
                    select(instances.c.patient_id, func.count(distinct(instances.c.study_uid)),
                           func.count(distinct(instances.c.series_uid)), func.count())
                    .where(in_bucket, instances.c.patient_id.in_(patients)).group_by(instances.c.patient_id)):
                self.values["NumberOfPatientRelatedStudies", patient] = study_count
                self.values["NumberOfPatientRelatedSeries", patient] = series_count
                self.values["NumberOfPatientRelatedInstances", patient] = instance_count
        for keyword, attribute in _LISTS.items():
            if keyword in keywords:
                tag = tag_for_keyword(attribute)
                listed: dict[str, set[str]] = {}
                for study, value in connection.execute(
                        select(instances.c.study_uid, attribute_values.c.value)
                        .join(attribute_values, attribute_values.c.instance_id == instances.c.id)
                        .where(in_bucket, instances.c.study_uid.in_(studies), attribute_values.c.tag == tag)
                        .distinct()):
                    listed.setdefault(study, set()).add(value)
                for study in studies:
                    self.values[keyword, study] = sorted(listed.get(study, ()))

    def value(self, keyword: str, row: Any) -> Any:
        if keyword in _CONSTANT:
            return _CONSTANT[keyword][1]
        if keyword.startswith("NumberOfPatient"):
            return self.values.get((keyword, row.patient_id), 0)
        if keyword == "NumberOfSeriesRelatedInstances":
            return self.values.get((keyword, row.series_uid), 0)
        return self.values.get((keyword, row.study_uid), [] if keyword in _LISTS else 0)

