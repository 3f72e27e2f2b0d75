import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom import Dataset
from pydicom.datadict import dictionary_has_tag, tag_for_keyword
from pynetdicom.dsutils import encode

from dicomrst.backends.dimse.identifier import cfind_identifier
from dicomrst.dicomweb import qido_attributes
from dicomrst.dicomweb.query import (
    QidoQuery,
    QueryError,
    QueryLevel,
    default_return_keywords,
    parse_qido_query,
)

STUDY, SERIES, IMAGE = QueryLevel.STUDY, QueryLevel.SERIES, QueryLevel.IMAGE
S_UID, SE_UID = "1.2.840.113619.2.1", "1.2.840.113619.2.1.3"


def q(level: QueryLevel = STUDY, *params: tuple[str, str], study: str | None = None, series: str | None = None) -> QidoQuery:
    return parse_qido_query(level, list(params), study_uid=study, series_uid=series)


def ident(level: QueryLevel = STUDY, *params: tuple[str, str], **scope: str) -> Dataset:
    return cfind_identifier(q(level, *params, **scope))


def bad(level: QueryLevel, *params: tuple[str, str], **scope: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        q(level, *params, **scope)
    return info.value


def is_empty_key(ds: Dataset, keyword: str) -> bool:
    return keyword in ds and ds[keyword].is_empty


# --- resources and scoping -------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "scope", "study_value", "series_value"),
    [
        (STUDY, {}, "", None),
        (SERIES, {"study": S_UID}, S_UID, ""),
        (SERIES, {}, "", ""),
        (IMAGE, {"study": S_UID, "series": SE_UID}, S_UID, SE_UID),
        (IMAGE, {"study": S_UID}, S_UID, ""),
        (IMAGE, {}, "", ""),
    ],
)
def test_resources(level, scope, study_value, series_value):
    identifier = ident(level, **scope)
    assert identifier.QueryRetrieveLevel == level.value
    assert (identifier.StudyInstanceUID or "") == study_value
    if series_value is None:
        assert "SeriesInstanceUID" not in identifier
    else:
        assert (identifier.SeriesInstanceUID or "") == series_value


def test_study_defaults_are_universal_keys():
    identifier = ident(STUDY)
    for keyword in qido_attributes.STUDY_DEFAULTS:
        assert is_empty_key(identifier, keyword), keyword
    assert "Modality" not in identifier
    assert "SpecificCharacterSet" not in identifier


def test_series_scoped_by_study_has_no_study_defaults():
    identifier = ident(SERIES, study=S_UID)
    for keyword in qido_attributes.SERIES_DEFAULTS:
        assert is_empty_key(identifier, keyword), keyword
    assert "PatientName" not in identifier
    assert "StudyDate" not in identifier


def test_unscoped_series_include_study_defaults():
    identifier = ident(SERIES)
    for keyword in qido_attributes.STUDY_DEFAULTS + qido_attributes.SERIES_DEFAULTS:
        assert keyword in identifier, keyword


def test_series_request_attributes_sequence_item():
    sequence = ident(SERIES).RequestAttributesSequence
    assert len(sequence) == 1
    assert is_empty_key(sequence[0], "ScheduledProcedureStepID")
    assert is_empty_key(sequence[0], "RequestedProcedureID")


def test_instances_scoped_by_series():
    identifier = ident(IMAGE, study=S_UID, series=SE_UID)
    for keyword in qido_attributes.INSTANCE_DEFAULTS:
        assert is_empty_key(identifier, keyword), keyword
    assert "PatientName" not in identifier
    assert "Modality" not in identifier


def test_instances_scoped_by_study_include_series_defaults():
    identifier = ident(IMAGE, study=S_UID)
    assert "Modality" in identifier and "SeriesNumber" in identifier
    assert "PatientName" not in identifier


def test_unscoped_instances_include_study_and_series_defaults():
    identifier = ident(IMAGE)
    for keyword in ("PatientName", "StudyDate", "Modality", "SeriesNumber", "SOPInstanceUID", "Rows"):
        assert keyword in identifier, keyword


def test_default_return_keywords_helper():
    assert default_return_keywords(STUDY, False, False) == list(qido_attributes.STUDY_DEFAULTS)
    series = default_return_keywords(SERIES, True, False)
    assert "PatientName" not in series
    assert {"StudyInstanceUID", "SeriesInstanceUID", "RequestAttributesSequence"} <= set(series)
    image = default_return_keywords(IMAGE, True, True)
    assert {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"} <= set(image)
    assert "Modality" not in image
    assert len(image) == len(set(image))


def test_every_table_keyword_is_known_to_pydicom():
    tables = [getattr(qido_attributes, name) for name in dir(qido_attributes) if name.isupper()]
    for table in tables:
        for keyword in table:
            assert tag_for_keyword(keyword) is not None, keyword
    for children in qido_attributes.SERIES_DEFAULT_SEQUENCES.values():
        for keyword in children:
            assert tag_for_keyword(keyword) is not None, keyword


def test_defaults_of_a_search():
    query = q(STUDY)
    assert (query.level, query.include_all, query.limit, query.offset, query.fuzzy_matching) == (
        STUDY,
        False,
        None,
        0,
        False,
    )


@pytest.mark.parametrize("uid", ["1.2.x", "", "1..2", "1" * 65, "1.2\n", "1.2 "])
def test_invalid_path_uid(uid):
    with pytest.raises(QueryError, match="request path"):
        q(SERIES, study=uid)


@pytest.mark.parametrize(
    ("level", "scope"),
    [(STUDY, {"study": S_UID}), (SERIES, {"study": S_UID, "series": SE_UID}), (IMAGE, {"series": SE_UID})],
)
def test_impossible_scope_is_a_programming_error(level, scope):
    with pytest.raises(ValueError) as info:
        q(level, **scope)
    assert not isinstance(info.value, QueryError)


# --- includefield ----------------------------------------------------------------------


def test_includefield_keyword_tag_list_and_repeat():
    identifier = ident(
        STUDY,
        ("includefield", "StudyDescription"),
        ("includefield", "00101010,00101030"),
        ("includefield", "0008103e"),
    )
    for keyword in ("StudyDescription", "PatientAge", "PatientWeight", "SeriesDescription"):
        assert is_empty_key(identifier, keyword), keyword


def test_includefield_sequence_path_and_whole_sequence():
    identifier = ident(
        STUDY,
        ("includefield", "ReferencedStudySequence.ReferencedSOPInstanceUID"),
        ("includefield", "ProcedureCodeSequence"),
    )
    assert is_empty_key(identifier.ReferencedStudySequence[0], "ReferencedSOPInstanceUID")
    assert identifier["ProcedureCodeSequence"].VR == "SQ"
    assert len(identifier.ProcedureCodeSequence) == 0


def test_includefield_does_not_override_a_match_or_path_uid():
    identifier = ident(
        SERIES, ("Modality", "CT"), ("includefield", "Modality,StudyInstanceUID"), study=S_UID
    )
    assert identifier.Modality == "CT"
    assert identifier.StudyInstanceUID == S_UID


@pytest.mark.parametrize(
    ("level", "scope", "present"),
    [
        (STUDY, {}, ["StudyDescription", "PatientAge", "PatientWeight", "OtherPatientIDs"]),
        (SERIES, {"study": S_UID}, ["SeriesDate", "BodyPartExamined", "InstitutionName", "ProtocolName"]),
        (IMAGE, {"study": S_UID, "series": SE_UID}, ["ImageType", "ContentDate", "AcquisitionNumber"]),
        (IMAGE, {}, ["StudyDescription", "SeriesDate", "ImageType"]),
    ],
)
def test_includefield_all(level, scope, present):
    query = q(level, ("includefield", "all"), **scope)
    assert query.include_all
    for keyword in present:
        assert is_empty_key(cfind_identifier(query), keyword), keyword


def test_includefield_all_scoped_series_omits_study_extras():
    assert "StudyDescription" not in ident(SERIES, ("includefield", "all"), study=S_UID)


def test_includefield_unknown_names_the_attribute():
    error = bad(STUDY, ("includefield", "PatientName,NoSuchThing"))
    assert error.parameter == "includefield"
    assert "'includefield'" in str(error) and "'NoSuchThing'" in str(error)


def test_includefield_below_level_is_refused():
    error = bad(STUDY, ("includefield", "SOPInstanceUID"))
    assert "SOPInstanceUID" in str(error)


# --- matching keys ---------------------------------------------------------------------


def test_match_by_keyword_and_case_insensitive_tag():
    identifier = ident(STUDY, ("PatientID", "ID1"), ("0020000d", "1.2.3"), ("00080050", "ACC1"))
    assert identifier.PatientID == "ID1"
    assert identifier.StudyInstanceUID == "1.2.3"
    assert identifier.AccessionNumber == "ACC1"


def test_match_in_sequence_path_uses_one_item():
    identifier = ident(
        STUDY,
        ("ReferencedStudySequence.ReferencedSOPInstanceUID", "1.2.3"),
        ("00081110.00081150", "1.2.840.10008.3.1.2.3.1"),
    )
    (item,) = identifier.ReferencedStudySequence
    assert item.ReferencedSOPInstanceUID == "1.2.3"
    assert item.ReferencedSOPClassUID == "1.2.840.10008.3.1.2.3.1"


def test_match_in_default_sequence_keeps_the_other_keys():
    (item,) = ident(SERIES, ("RequestAttributesSequence.RequestedProcedureID", "RP1")).RequestAttributesSequence
    assert item.RequestedProcedureID == "RP1"
    assert is_empty_key(item, "ScheduledProcedureStepID")


def test_deep_sequence_path():
    identifier = ident(STUDY, ("OtherPatientIDsSequence.IssuerOfPatientIDQualifiersSequence.UniversalEntityID", "X"))
    assert identifier.OtherPatientIDsSequence[0].IssuerOfPatientIDQualifiersSequence[0].UniversalEntityID == "X"


def test_empty_sequence_match_is_a_return_key():
    identifier = ident(SERIES, ("RequestAttributesSequence", ""), ("ReferencedStudySequence", ""))
    assert len(identifier.RequestAttributesSequence) == 1  # default item kept
    assert len(identifier.ReferencedStudySequence) == 0


def test_sequence_with_value_is_refused():
    assert "Sequence.Attribute" in str(bad(STUDY, ("ReferencedStudySequence", "x")))


def test_non_sequence_in_path_is_refused():
    error = bad(STUDY, ("PatientName.PatientID", "x"))
    assert "PatientName is not a sequence" in str(error)


def test_empty_value_is_universal_match():
    identifier = ident(STUDY, ("PatientName", ""), ("StudyDate", ""), ("StudyInstanceUID", ""), ("Rows", ""))
    assert is_empty_key(identifier, "PatientName")
    assert is_empty_key(identifier, "StudyDate")
    assert is_empty_key(identifier, "Rows")


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("PatientName", "Doe*"),
        ("PatientName", "D?e^J*"),
        ("PatientName", "*"),
        ("PatientID", "12?4*"),
        ("StudyDescription", "*chest*"),
        ("AccessionNumber", "A*"),
        ("Modality", "C?"),
        ("ModalitiesInStudy", "*"),
        ("ReferringPhysicianName", "Smith^*"),
    ],
)
def test_wildcards_pass_through_for_string_vrs(keyword, value):
    assert ident(STUDY, (keyword, value))[keyword].value == value


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("StudyDate", "2020*"), ("StudyTime", "10?0"), ("StudyInstanceUID", "1.2.*"), ("NumberOfStudyRelatedSeries", "1?")],
)
def test_wildcards_refused_for_other_vrs(keyword, value):
    error = bad(STUDY, (keyword, value))
    assert "wildcards are not allowed" in str(error)
    assert error.parameter == keyword


@pytest.mark.parametrize("keyword", ["StudyDate", "StudyTime", "StudyInstanceUID", "NumberOfStudyRelatedSeries"])
def test_lone_star_is_universal_for_any_vr(keyword):
    assert is_empty_key(ident(STUDY, (keyword, "*")), keyword)


@pytest.mark.parametrize("value", ["20200101", "20200101-", "-20201231", "20200101-20201231", "19000229"])
def test_valid_dates(value):
    assert ident(STUDY, ("StudyDate", value)).StudyDate == value


@pytest.mark.parametrize(
    "value", ["2020-01-01", "202001", "20201301", "20200132", "20200101-20201231-", "-", "20200101--20200102", "abc"]
)
def test_invalid_dates(value):
    error = bad(STUDY, ("StudyDate", value))
    assert "'StudyDate'" in str(error) and "YYYYMMDD" in str(error)


def test_non_ascii_digits_are_not_dates():
    bad(STUDY, ("StudyDate", "２０２００１０１"))


@pytest.mark.parametrize("value", ["10", "1030", "103000", "103000.123456", "1000-1200", "-1200", "0800-"])
def test_valid_times(value):
    assert ident(STUDY, ("StudyTime", value)).StudyTime == value


@pytest.mark.parametrize("value", ["25", "1060", "103000.1234567", "10:30", "1", "103"])
def test_invalid_times(value):
    assert "HH[MM[SS" in str(bad(STUDY, ("StudyTime", value)))


@pytest.mark.parametrize(
    "value",
    ["2020", "20200101120000", "20200101120000.5+0100", "20200101-20201231", "20200101120000-0500", "-2021"],
)
def test_valid_datetimes(value):
    assert ident(IMAGE, ("AcquisitionDateTime", value)).AcquisitionDateTime == value


@pytest.mark.parametrize("value", ["2020-13", "20201301", "2020010112000000", "20200101T1200"])
def test_invalid_datetimes(value):
    bad(IMAGE, ("AcquisitionDateTime", value))


def test_uid_list_becomes_multi_valued_key():
    identifier = ident(IMAGE, ("SOPInstanceUID", "1.2.3,1.2.4,1.2.5"), study=S_UID, series=SE_UID)
    assert list(identifier.SOPInstanceUID) == ["1.2.3", "1.2.4", "1.2.5"]
    encoded = encode(identifier, True, True)
    assert b"1.2.3\\1.2.4\\1.2.5" in encoded


@pytest.mark.parametrize("value", ["1.2.a", "1..2", "1.2,", ",1.2", ".1.2", "1.2\\1.3", "1" * 65, "1.2, 1.3"])
def test_invalid_uids(value):
    error = bad(STUDY, ("StudyInstanceUID", value))
    assert "is not a valid UID" in str(error)


@pytest.mark.parametrize(("keyword", "value", "expected"), [("Rows", "512", 512), ("Columns", "+64", 64)])
def test_binary_integers(keyword, value, expected):
    assert ident(IMAGE, (keyword, value))[keyword].value == expected


@pytest.mark.parametrize("value", ["abc", "-1", "70000", "1.5", "1e3", "", " 5"])
def test_invalid_us_values(value):
    if value == "":
        return  # empty is universal matching
    assert "'Rows'" in str(bad(IMAGE, ("Rows", value)))


def test_integer_string_and_decimal_string():
    identifier = ident(IMAGE, ("InstanceNumber", "12"), ("SliceThickness", "2.5"))
    assert identifier.InstanceNumber == 12
    assert identifier.SliceThickness == 2.5
    bad(IMAGE, ("InstanceNumber", "1.5"))
    bad(IMAGE, ("InstanceNumber", "1" * 13))
    bad(IMAGE, ("SliceThickness", "abc"))


def test_huge_integer_is_a_query_error():
    bad(IMAGE, ("Rows", "9" * 5000))


@pytest.mark.parametrize("value", ["CT", "MR ", "OT_X", "C*", "?T", "1A"])
def test_valid_code_strings(value):
    assert ident(SERIES, ("Modality", value)).Modality == value.strip() or value


@pytest.mark.parametrize("value", ["ct", "C-T", "MR\\CT", "A" * 17, "É"])
def test_invalid_code_strings(value):
    error = bad(SERIES, ("Modality", value))
    assert "'Modality'" in str(error)


def test_string_length_limits():
    bad(STUDY, ("PatientID", "x" * 65))
    bad(STUDY, ("AccessionNumber", "x" * 17))
    assert ident(STUDY, ("PatientID", "x" * 64)).PatientID == "x" * 64


def test_backslash_means_multiple_values_and_is_refused():
    assert "single value" in str(bad(STUDY, ("PatientID", "A\\B")))


def test_person_name_with_too_many_groups():
    bad(STUDY, ("PatientName", "a=b=c=d"))


def test_control_characters_are_refused():
    assert "control characters" in str(bad(STUDY, ("PatientID", "A\x00B")))
    bad(STUDY, ("StudyDescription", "line\nbreak"))


def test_unsupported_vr_for_matching():
    assert "VR OB" in str(bad(IMAGE, ("PixelData", "x")))


# --- conflicts and structure -----------------------------------------------------------


def test_study_uid_conflicting_with_path():
    error = bad(SERIES, ("StudyInstanceUID", "1.2.3"), study=S_UID)
    assert error.parameter == "StudyInstanceUID"
    assert "conflicts" in str(error)


def test_series_uid_conflicting_with_path():
    bad(IMAGE, ("0020000E", "1.2.3"), study=S_UID, series=SE_UID)


def test_uid_equal_to_path_or_universal_is_fine():
    assert ident(SERIES, ("StudyInstanceUID", S_UID), study=S_UID).StudyInstanceUID == S_UID
    assert ident(SERIES, ("StudyInstanceUID", ""), study=S_UID).StudyInstanceUID == S_UID
    assert ident(SERIES, ("StudyInstanceUID", "*"), study=S_UID).StudyInstanceUID == S_UID


@pytest.mark.parametrize(
    ("level", "keyword", "scope"),
    [
        (STUDY, "SeriesInstanceUID", {}),
        (STUDY, "SOPInstanceUID", {}),
        (SERIES, "SOPInstanceUID", {"study": S_UID}),
        (SERIES, "00080018", {}),
    ],
)
def test_uids_below_the_level_are_refused(level, keyword, scope):
    error = bad(level, (keyword, "1.2.3"), **scope)
    assert error.parameter == keyword
    assert "cannot be used" in str(error)


def test_lower_uids_allowed_at_their_level():
    assert ident(SERIES, ("SeriesInstanceUID", "1.2.3")).SeriesInstanceUID == "1.2.3"
    assert ident(IMAGE, ("SOPInstanceUID", "1.2.3")).SOPInstanceUID == "1.2.3"


@pytest.mark.parametrize(
    "params",
    [
        [("PatientName", "A"), ("PatientName", "B")],
        [("PatientName", "A"), ("00100010", "B")],
        [("PatientID", ""), ("PatientID", "")],
        [("ReferencedStudySequence.ReferencedSOPInstanceUID", "1"), ("00081110.00081155", "2")],
    ],
)
def test_same_attribute_twice(params):
    error = bad(STUDY, *params)
    assert "more than once" in str(error)
    assert error.parameter == params[1][0]


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("foo", "unknown attribute 'foo'"),
        ("patientname", "unknown attribute 'patientname'"),
        ("PatientNameX", "unknown attribute"),
        ("Limit", "unknown attribute 'Limit'"),
        ("", "unknown attribute ''"),
        ("PatientName.", "unknown attribute ''"),
        ("00090001", "not a queryable attribute"),
        ("00090500", "not a queryable attribute"),
        ("00070010", "not a queryable attribute"),
        ("00100000", "not a queryable attribute"),
        ("00020010", "not a queryable attribute"),
        ("0010001", "unknown attribute"),
        ("0010001G", "unknown attribute"),
    ],
)
def test_unknown_or_unsupported_keys_name_the_parameter(key, fragment):
    error = bad(STUDY, (key, "x"))
    assert error.parameter == key
    assert f"query parameter {key!r}" in str(error)
    assert fragment in str(error)


def test_unknown_even_tag():
    assert not dictionary_has_tag(0x00100011)
    assert "unknown attribute '00100011'" in str(bad(STUDY, ("00100011", "x")))


@pytest.mark.parametrize("key", ["QueryRetrieveLevel", "SpecificCharacterSet", "00080052"])
def test_gateway_owned_keys_cannot_be_matched(key):
    assert "set by the gateway" in str(bad(STUDY, (key, "X")))


def test_query_retrieve_level_includefield_is_harmless():
    assert ident(SERIES, ("includefield", "QueryRetrieveLevel")).QueryRetrieveLevel == "SERIES"


def test_content_negotiation_parameters_are_left_to_the_web_layer():
    query = q(STUDY, ("accept", "application/dicom+json"), ("charset", "utf-8"))
    assert "accept" not in str(cfind_identifier(query))


# --- limit, offset, fuzzymatching ------------------------------------------------------


def test_paging_and_fuzzy():
    query = q(STUDY, ("limit", "25"), ("offset", "50"), ("fuzzymatching", "TRUE"))
    assert (query.limit, query.offset, query.fuzzy_matching) == (25, 50, True)
    assert q(STUDY, ("offset", "0"), ("fuzzymatching", "false")).fuzzy_matching is False


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("limit", "0"),
        ("limit", "-1"),
        ("limit", "abc"),
        ("limit", "1.5"),
        ("limit", ""),
        ("limit", " 5"),
        ("limit", "9" * 40),
        ("offset", "-1"),
        ("offset", "x"),
        ("offset", ""),
    ],
)
def test_invalid_control_values(key, value):
    error = bad(STUDY, (key, value))
    assert error.parameter == key
    assert f"query parameter {key!r}" in str(error)


@pytest.mark.parametrize("value", ["yes", "", "1", "perhaps", "FALSE"])
def test_fuzzymatching_is_never_an_error(value):
    assert q(STUDY, ("fuzzymatching", value)).fuzzy_matching is False


@pytest.mark.parametrize("key", ["limit", "offset"])
def test_control_parameters_given_twice(key):
    assert "more than once" in str(bad(STUDY, (key, "1"), (key, "1")))


def test_fuzzymatching_given_twice_is_no_error():
    assert q(STUDY, ("fuzzymatching", "true"), ("fuzzymatching", "false")).fuzzy_matching is False


# --- character set ---------------------------------------------------------------------


def test_ascii_query_has_no_specific_character_set():
    assert "SpecificCharacterSet" not in ident(STUDY, ("PatientName", "Doe*"))


def test_non_ascii_value_declares_utf8_and_encodes_as_utf8():
    identifier = ident(STUDY, ("PatientName", "Müller^Jürgen*"), ("StudyDescription", "胸部"))
    assert identifier.SpecificCharacterSet == "ISO_IR 192"
    encoded = encode(identifier, True, True)
    assert "Müller^Jürgen*".encode() in encoded
    assert "胸部".encode() in encoded


def test_non_ascii_inside_sequence_declares_utf8():
    identifier = ident(STUDY, ("OtherPatientIDsSequence.PatientID", "Ü1"))
    assert identifier.SpecificCharacterSet == "ISO_IR 192"


def test_identifier_encodes_for_c_find():
    identifier = ident(IMAGE, ("includefield", "all"), ("Modality", "CT"), ("StudyDate", "20200101-"))
    assert encode(identifier, True, True)
    assert encode(identifier, False, True)


# --- properties ------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "PatientName",
        "PatientID",
        "StudyDate",
        "StudyTime",
        "AcquisitionDateTime",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "Modality",
        "Rows",
        "InstanceNumber",
        "SliceThickness",
        "PatientAge",
        "ReferencedStudySequence",
        "ReferencedStudySequence.ReferencedSOPInstanceUID",
        "00100010",
        "includefield",
        "limit",
        "offset",
        "fuzzymatching",
        "accept",
    ]
)
_VALUES = st.one_of(
    st.text(),
    st.text(alphabet="0123456789.-*?,+ ", max_size=20),
    st.sampled_from(["", "*", "all", "true", "1", "20200101-", "1.2.3,1.2.4", "CT", "Doe^J*"]),
)
_SCOPES = st.sampled_from(
    [
        (STUDY, None, None),
        (SERIES, None, None),
        (SERIES, S_UID, None),
        (IMAGE, None, None),
        (IMAGE, S_UID, None),
        (IMAGE, S_UID, SE_UID),
    ]
)


def _check_only_query_errors(scope, params):
    level, study, series = scope
    try:
        query = parse_qido_query(level, params, study_uid=study, series_uid=series)
    except QueryError as error:
        assert str(error)
        return
    assert cfind_identifier(query).QueryRetrieveLevel == level.value
    assert encode(cfind_identifier(query), True, True) is not None  # always sendable


@given(_SCOPES, st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=5))
def test_arbitrary_text_only_raises_query_error(scope, params):
    _check_only_query_errors(scope, params)


@given(_SCOPES, st.lists(st.tuples(_KEYS, _VALUES), max_size=6))
def test_plausible_queries_only_raise_query_error(scope, params):
    _check_only_query_errors(scope, params)


def test_a_private_attribute_as_return_key_brings_its_creator():
    query = parse_qido_query(STUDY, [("includefield", "00091001")])
    assert cfind_identifier(query)[0x00091001].VR == "UN" and cfind_identifier(query)[0x00091001].value in (None, b"")
    assert cfind_identifier(query)[0x00090010].VR == "LO" and cfind_identifier(query)[0x00090010].value in (None, "")


def test_matching_on_a_private_attribute_with_its_creator():
    query = parse_qido_query(STUDY, [("00090010", "ACME 1.0"), ("00091001", "RESEARCH*")])
    for implicit in (True, False):
        assert encode(cfind_identifier(query), implicit, True) is not None
    assert cfind_identifier(query)[0x00090010].value == "ACME 1.0"
    assert cfind_identifier(query)[0x00091001].VR == "LO" and cfind_identifier(query)[0x00091001].value == "RESEARCH*"


def test_a_private_attribute_in_a_sequence_item_brings_its_creator_into_the_item():
    query = parse_qido_query(SERIES, [("includefield", "RequestAttributesSequence.00431001")])
    item = cfind_identifier(query).RequestAttributesSequence[0]
    assert 0x00431001 in item and 0x00430010 in item
