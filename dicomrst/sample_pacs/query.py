"""Query/Retrieve over the stored instances: which entities a request Identifier matches,
and the C-FIND response Identifier for each.

An entity (patient, study, series or image) is the group of instances sharing the
unique key of its level. It matches when one of its instances matches every key,
so a lower-level key such as Modality on a STUDY query selects the studies holding
such a series instead of being an error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from dicomrst.matching import is_universal, key_values, match_values
from dicomrst.sample_pacs.store import StoredInstance

__all__ = [
    "PATIENT_ROOT_LEVELS",
    "STUDY_ROOT_LEVELS",
    "Entity",
    "Hierarchy",
    "InvalidIdentifier",
    "find_responses",
    "instances_to_retrieve",
    "matching_entities",
]

PATIENT_ROOT_LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
STUDY_ROOT_LEVELS = ("STUDY", "SERIES", "IMAGE")

UNIQUE_KEYS = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}

_QUERY_RETRIEVE_LEVEL = Tag("QueryRetrieveLevel")
_SPECIFIC_CHARACTER_SET = Tag("SpecificCharacterSet")


class InvalidIdentifier(ValueError):
    """The Identifier does not fit the information model (status 0xA900)."""


def _distinct(keyword: str) -> Callable[[list[StoredInstance]], list[str]]:
    return lambda instances: sorted({i.value(keyword) for i in instances} - {""})


def _count_distinct(keyword: str) -> Callable[[list[StoredInstance]], int]:
    return lambda instances: len({i.value(keyword) for i in instances})


# Attributes computed from the entity they describe, not read from one header:
# keyword -> (level of that entity, computation).
_COMPUTED: dict[str, tuple[str, Callable[[list[StoredInstance]], Any]]] = {
    "NumberOfPatientRelatedStudies": ("PATIENT", _count_distinct("StudyInstanceUID")),
    "NumberOfPatientRelatedSeries": ("PATIENT", _count_distinct("SeriesInstanceUID")),
    "NumberOfPatientRelatedInstances": ("PATIENT", len),
    "NumberOfStudyRelatedSeries": ("STUDY", _count_distinct("SeriesInstanceUID")),
    "NumberOfStudyRelatedInstances": ("STUDY", len),
    "NumberOfSeriesRelatedInstances": ("SERIES", len),
    "ModalitiesInStudy": ("STUDY", _distinct("Modality")),
    "SOPClassesInStudy": ("STUDY", _distinct("SOPClassUID")),
}
# Of the computed attributes only these lists are matched; the counts are return keys.
_MATCHABLE_COMPUTED = frozenset({"ModalitiesInStudy", "SOPClassesInStudy"})


@dataclass(frozen=True)
class Entity:
    level: str
    instances: list[StoredInstance]  # every instance of the entity
    match: StoredInstance  # the instance that satisfied the keys; source of returned values


class Hierarchy:
    """Instances grouped by the unique key of each level, built only for the levels asked."""

    def __init__(self, instances: Sequence[StoredInstance]) -> None:
        self._instances = instances
        self._groups: dict[str, dict[str, list[StoredInstance]]] = {}

    def groups(self, level: str) -> dict[str, list[StoredInstance]]:
        if level not in self._groups:
            grouped: dict[str, list[StoredInstance]] = {}
            for instance in self._instances:
                grouped.setdefault(instance.value(UNIQUE_KEYS[level]), []).append(instance)
            self._groups[level] = grouped
        return self._groups[level]

    def entity_of(self, instance: StoredInstance, level: str) -> list[StoredInstance]:
        return self.groups(level)[instance.value(UNIQUE_KEYS[level])]


def query_level(identifier: Dataset, levels: Sequence[str]) -> str:
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip()
    if level not in levels:
        raise InvalidIdentifier(f"Query/Retrieve Level {level!r} is not one of {', '.join(levels)}")
    return level


def _key_elements(identifier: Dataset) -> list[DataElement]:
    """The keys to match or return: not the level, the character set or group lengths."""
    return [
        elem
        for elem in identifier
        if elem.tag not in (_QUERY_RETRIEVE_LEVEL, _SPECIFIC_CHARACTER_SET) and elem.tag.element != 0
    ]


def _instance_matches(instance: StoredInstance, keys: list[DataElement]) -> bool:
    for key in keys:
        data = instance.header.get(key.tag)
        if data is None or not match_values(key, key_values(data)):
            return False
    return True


def _computed_matches(instance: StoredInstance, hierarchy: Hierarchy, keys: list[DataElement]) -> bool:
    for key in keys:
        level, compute = _COMPUTED[key.keyword]
        values = compute(hierarchy.entity_of(instance, level))
        if not match_values(key, [str(v) for v in values]):
            return False
    return True


def matching_entities(
    identifier: Dataset, hierarchy: Hierarchy, levels: Sequence[str]
) -> list[Entity]:
    """Entities at the Identifier's level matching all its non-universal keys."""
    level = query_level(identifier, levels)
    keys = [k for k in _key_elements(identifier) if not is_universal(k)]
    computed_keys = [k for k in keys if k.keyword in _MATCHABLE_COMPUTED]
    stored_keys = [k for k in keys if k.keyword not in _COMPUTED]
    entities: list[Entity] = []
    for group in hierarchy.groups(level).values():
        match = next((i for i in group if _instance_matches(i, stored_keys)), None)
        if match is not None and _computed_matches(match, hierarchy, computed_keys):
            entities.append(Entity(level, group, match))
    return entities


def _response_element(
    key: DataElement, entity: Entity, hierarchy: Hierarchy, retrieve_aet: str
) -> DataElement:
    keyword = key.keyword
    if keyword in _COMPUTED:
        level, compute = _COMPUTED[keyword]
        value = compute(hierarchy.entity_of(entity.match, level))
        return DataElement(key.tag, dictionary_VR(key.tag), value)
    if keyword == "RetrieveAETitle":
        return DataElement(key.tag, "AE", retrieve_aet)
    if keyword == "InstanceAvailability":
        return DataElement(key.tag, "CS", "ONLINE")
    if key.tag in entity.match.header:
        return copy.deepcopy(entity.match.header[key.tag])
    # Asked for but not held: returned empty, as PS3.4 C.2.2.1.3 requires.
    return DataElement(key.tag, key.VR, None)


def find_responses(
    identifier: Dataset,
    instances: Sequence[StoredInstance],
    levels: Sequence[str],
    *,
    retrieve_aet: str,
) -> Iterator[Dataset]:
    """C-FIND response Identifiers, one per matching entity."""
    hierarchy = Hierarchy(instances)
    entities = matching_entities(identifier, hierarchy, levels)
    keys = _key_elements(identifier)
    for entity in entities:
        response = Dataset()
        response.QueryRetrieveLevel = entity.level
        # Values are copied decoded; the response must be encoded in the same repertoire.
        character_set = entity.match.header.get("SpecificCharacterSet")
        if character_set:
            response.SpecificCharacterSet = character_set
        for key in keys:
            response.add(_response_element(key, entity, hierarchy, retrieve_aet))
        unique_key = UNIQUE_KEYS[entity.level]
        if unique_key not in response:
            setattr(response, unique_key, entity.match.value(unique_key))
        yield response


def instances_to_retrieve(
    identifier: Dataset, instances: Sequence[StoredInstance], levels: Sequence[str]
) -> list[StoredInstance]:
    """Every instance of the entities a C-GET or C-MOVE Identifier selects.

    The unique key of the requested level must be given (PS3.4 C.4.2.1.4.1), which
    also keeps a careless empty request from retrieving the whole archive.
    """
    level = query_level(identifier, levels)
    unique_key = UNIQUE_KEYS[level]
    if unique_key not in identifier or is_universal(identifier[unique_key]):
        raise InvalidIdentifier(f"a {level} retrieve needs a {unique_key}")
    entities = matching_entities(identifier, Hierarchy(instances), levels)
    return [instance for entity in entities for instance in entity.instances]
