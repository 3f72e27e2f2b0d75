"""The matching engine (PS3.4 C.2.2.2) on its own: every kind of key against stored values, and a
whole identifier against a candidate, as the sample PACS and the gateway's own checks use it."""
from __future__ import annotations

import pytest
from pydicom import Dataset
from pydicom.dataelem import DataElement

from dicomrst.matching import dataset_matches, is_universal, key_values, match_values, unmatched_keys


def key(keyword_vr: str, value) -> DataElement:
    from pydicom.datadict import tag_for_keyword

    keyword, vr = keyword_vr.split(":")
    return DataElement(tag_for_keyword(keyword), vr, value)


@pytest.mark.parametrize("element, values, expected", [
    (key("PatientName:PN", "Doe^Jane"), ["DOE^JANE"], True),  # PN is case-insensitive
    (key("PatientName:PN", "Doe^J*"), ["Doe^Jane"], True),
    (key("PatientName:PN", "Doe^?ane"), ["Doe^Jane"], True),
    (key("PatientName:PN", "Doe^J"), ["Doe^Jane"], False),
    (key("PatientName:PN", "Yamada^Tarou"), ["Yamada^Tarou=山田^太郎"], True),
    (key("PatientName:PN", "山田^太郎"), ["Yamada^Tarou=山田^太郎"], True),
    (key("PatientName:PN", "Doe^Jane^^"), ["Doe^Jane"], True),
    (key("PatientID:LO", "abc"), ["ABC"], False),  # other text is case-sensitive
    (key("PatientID:LO", "A*C"), ["ABBC"], True),
    (key("Modality:CS", "CT"), ["MR", "CT"], True),  # a multi-valued attribute
    (key("StudyDate:DA", "20200101-20201231"), ["20200615"], True),
    (key("StudyDate:DA", "20200101-20201231"), ["20210101"], False),
    (key("StudyDate:DA", "-20200101"), ["20191231"], True),
    (key("StudyDate:DA", "20200101-"), ["20191231"], False),
    (key("StudyTime:TM", "18-"), ["185959.999"], True),
    (key("StudyTime:TM", "-18"), ["185959"], True),
    (key("StudyTime:TM", "-18"), ["190000"], False),
    (key("AcquisitionDateTime:DT", "20200101-20200102"), ["20200102235959"], True),
    (key("StudyInstanceUID:UI", ["1.2.3", "1.2.4"]), ["1.2.4"], True),  # list of UID
    (key("StudyInstanceUID:UI", ["1.2.3", "1.2.4"]), ["1.2.5"], False),
    (key("SeriesNumber:IS", "7"), ["7"], True),
    (key("SliceThickness:DS", "1.50"), ["1.5"], True),
    (key("PatientAge:AS", "045Y"), ["045Y"], True),
    (key("PatientAge:AS", "045Y"), ["046Y"], False),
    (key("RetrieveAETitle:AE", "ORTH*"), ["ORTHANC"], True),
    (key("RetrieveAETitle:AE", "orth*"), ["ORTHANC"], False),
])
def test_one_key_against_stored_values(element: DataElement, values: list[str], expected: bool):
    assert match_values(element, values) is expected


def test_universal_keys():
    assert is_universal(key("PatientName:PN", ""))
    assert is_universal(key("PatientName:PN", None))
    assert not is_universal(key("PatientName:PN", "*"))
    assert key_values(key("ModalitiesInStudy:CS", ["CT", "", "MR"])) == ["CT", "MR"]


def identifier(**values) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_a_candidate_must_match_every_key_it_holds():
    query = identifier(PatientName="Alpha^Anna", Modality="MR", SeriesDescription="")
    assert dataset_matches(query, identifier(PatientName="ALPHA^ANNA", Modality="MR"))
    assert unmatched_keys(query, identifier(PatientName="Beta^Bob", Modality="MR")) == ([0x00100010], [])
    assert unmatched_keys(query, identifier(PatientName="Alpha^Anna", Modality="CT")) == ([0x00080060], [])


def test_keys_a_candidate_lacks_cannot_be_checked():
    query = identifier(PatientName="Alpha^Anna", ModalitiesInStudy="CT")
    failed, unknown = unmatched_keys(query, identifier(PatientName="Alpha^Anna"))
    assert failed == [] and unknown == [0x00080061]
    assert dataset_matches(query, identifier(PatientName="Alpha^Anna"))


def test_bookkeeping_is_not_a_key():
    query = identifier()
    candidate = Dataset()
    candidate.QueryRetrieveLevel = "STUDY"
    candidate.SpecificCharacterSet = "ISO_IR 100"
    assert unmatched_keys(query, candidate) == ([], [])


def test_sequence_keys_match_through_one_item():
    code = Dataset()
    code.CodeValue = "T-A0100"
    query = identifier(AnatomicRegionSequence=[code])
    wrong, right = Dataset(), Dataset()
    wrong.CodeValue, right.CodeValue = "T-D4000", "T-A0100"
    assert dataset_matches(query, identifier(AnatomicRegionSequence=[wrong, right]))
    assert unmatched_keys(query, identifier(AnatomicRegionSequence=[wrong])) == ([0x00082218], [])
    assert unmatched_keys(query, identifier()) == ([], [0x00082218])
    empty_item = Dataset()
    empty_item.CodeValue = ""
    assert unmatched_keys(identifier(AnatomicRegionSequence=[empty_item]), identifier()) == ([], [])
