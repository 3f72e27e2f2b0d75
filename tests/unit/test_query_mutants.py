"""QIDO-RS query parsing, pinned where mutation testing found it loose: the content negotiation parameters
that must not end the parameter loop, UID lists of two, matching on every VR family (AE, AS, float,
signed and unsigned binary integers, the text VRs), the private attribute bounds, includefield=all,
and the exact 400 messages. Tested on the query model itself (QidoQuery), not on a C-FIND identifier."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from dicomrst.dicomweb.qido_attributes import INSTANCE_ALL, SERIES_ALL
from dicomrst.dicomweb.query import (
    QidoQuery,
    QueryError,
    QueryLevel,
    default_return_keywords,
    is_private_creator,
    parse_qido_query,
    vr_of,
)

STUDY, SERIES, IMAGE = QueryLevel.STUDY, QueryLevel.SERIES, QueryLevel.IMAGE
S_UID, SE_UID = "1.2.840.113619.2.1", "1.2.840.113619.2.1.3"


def parse(level: QueryLevel, *params: tuple[str, str], study: str | None = None,
          series: str | None = None) -> QidoQuery:
    return parse_qido_query(level, list(params), study_uid=study, series_uid=series)


def _name(tag: int) -> str:
    return keyword_for_tag(tag) or f"{tag:08X}"


def matched(query: QidoQuery) -> dict[str, Any]:
    return {".".join(_name(tag) for tag in key.path): key.value for key in query.matching}


def returned(query: QidoQuery) -> set[str]:
    return {".".join(_name(tag) for tag in path) for path in query.return_keys}


def refusal(level: QueryLevel, *params: tuple[str, str], **scope: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse(level, *params, **scope)
    return info.value


def message(level: QueryLevel, *params: tuple[str, str], **scope: str) -> str:
    return str(refusal(level, *params, **scope))


# --- levels ------------------------------------------------------------------------------------------


def test_query_levels_are_the_dicom_query_retrieve_level_strings():
    assert [level.value for level in QueryLevel] == ["STUDY", "SERIES", "IMAGE"]
    assert QueryLevel("STUDY") is STUDY and QueryLevel("SERIES") is SERIES and QueryLevel("IMAGE") is IMAGE


# --- the parameter loop --------------------------------------------------------------------------------


def test_content_negotiation_parameters_do_not_end_the_parameter_list():
    query = parse(SERIES, ("accept", "application/dicom+json"), ("PatientID", "123"), ("charset", "utf-8"),
                  ("Modality", "CT"), ("includefield", "SeriesDate"), ("limit", "5"), ("accept", "*/*"),
                  ("StudyDate", "20200101"))
    assert matched(query) == {"PatientID": "123", "Modality": "CT", "StudyDate": "20200101"}
    assert "SeriesDate" in returned(query)
    assert query.limit == 5


def test_includefield_all_does_not_end_its_list():
    query = parse(STUDY, ("includefield", "all,00091001,PatientAge"))
    assert query.include_all
    assert {"00091001", "PatientAge"} <= returned(query)
    assert message(STUDY, ("includefield", "all,Nonsense")) == \
        "query parameter 'includefield': unknown attribute 'Nonsense'"


def test_includefield_all_adds_to_the_defaults():
    for level, scope in ((STUDY, {}), (SERIES, {"study": S_UID}), (IMAGE, {})):
        plain = parse(level, **scope)
        everything = parse(level, ("includefield", "all"), **scope)
        assert set(plain.return_keys) < set(everything.return_keys)


def test_includefield_all_on_instances_of_a_series_adds_no_series_attributes():
    series_only = set(SERIES_ALL) - set(INSTANCE_ALL) - set(default_return_keywords(IMAGE, True, False))
    assert series_only
    scoped = returned(parse(IMAGE, ("includefield", "all"), study=S_UID, series=SE_UID))
    assert not series_only & scoped
    unscoped = returned(parse(IMAGE, ("includefield", "all"), study=S_UID))
    assert series_only <= unscoped


# --- UIDs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("1.2.3", "1.2.3"),
    ("1.2.3,1.2.4", ["1.2.3", "1.2.4"]),
    ("1.2.3,1.2.4,1.2.5", ["1.2.3", "1.2.4", "1.2.5"]),
])
def test_a_list_of_uids_is_a_multi_valued_key_one_uid_a_single_value(value, expected):
    assert matched(parse(STUDY, ("StudyInstanceUID", value)))["StudyInstanceUID"] == expected


def test_an_invalid_uid_in_a_list_is_named():
    assert message(STUDY, ("StudyInstanceUID", "1.2.3,1.x")) == \
        "query parameter 'StudyInstanceUID': '1.x' is not a valid UID"


def test_path_uids_are_checked_and_named():
    error = refusal(SERIES, study="1.2.x")
    assert str(error) == "invalid study UID in the request path: '1.2.x'" and error.parameter == "study"
    error = refusal(IMAGE, study=S_UID, series="x")
    assert str(error) == "invalid series UID in the request path: 'x'" and error.parameter == "series"


def test_an_impossible_resource_is_a_routing_error_that_says_so():
    with pytest.raises(ValueError) as info:
        parse(STUDY, study=S_UID)
    assert not isinstance(info.value, QueryError)
    assert str(info.value) == f"no QIDO-RS resource for level STUDY with study={S_UID} series=None"


def test_a_uid_below_the_level_names_the_level():
    assert message(STUDY, ("SOPInstanceUID", "1.2")) == \
        "query parameter 'SOPInstanceUID': SOPInstanceUID cannot be used in a study-level search"
    assert message(SERIES, ("includefield", "SOPInstanceUID")) == \
        "query parameter 'includefield': SOPInstanceUID cannot be used in a series-level search"


# --- matching on each VR family ------------------------------------------------------------------------


@pytest.mark.parametrize(("keyword", "value"), [
    ("RetrieveAETitle", "STAT*"),  # AE
    ("StationAETitle", "?ACS1"),
    ("LongCodeValue", "a?c*"),  # UC
    ("ExtendedCodeMeaning", "a*"),  # LT
    ("InstitutionAddress", "Main St*"),  # ST
    ("PrivateDataElementDescription", "*x"),  # UT
    ("CodingSchemeURL", "http://host/*"),  # UR
])
def test_wildcards_are_kept_for_every_wildcard_vr(keyword, value):
    assert matched(parse(IMAGE, (keyword, value))) == {keyword: value}


@pytest.mark.parametrize("keyword", ["ExtendedCodeMeaning", "InstitutionAddress", "PrivateDataElementDescription"])
def test_a_backslash_is_a_character_in_lt_st_ut_and_ur(keyword):
    assert matched(parse(IMAGE, (keyword, "a\\b"))) == {keyword: "a\\b"}


def test_a_backslash_in_a_url_is_one_value_with_a_character_urls_do_not_have():
    assert message(IMAGE, ("CodingSchemeURL", "a\\b")) == "query parameter 'CodingSchemeURL': 'a\\\\b' is not a valid UR value"


@pytest.mark.parametrize("keyword", ["LongCodeValue", "RetrieveAETitle", "PatientID"])
def test_a_backslash_separates_values_elsewhere_and_is_refused(keyword):
    assert message(IMAGE, (keyword, "a\\b")) == f"query parameter '{keyword}': only a single value is allowed"


def test_age_strings_are_matched_as_given_and_checked():
    assert matched(parse(STUDY, ("PatientAge", "045Y"))) == {"PatientAge": "045Y"}
    assert message(STUDY, ("PatientAge", "45")) == "query parameter 'PatientAge': '45' is not a valid AS value"


@pytest.mark.parametrize(("keyword", "vr", "value", "expected"), [
    ("RecommendedDisplayFrameRateInFloat", "FL", "1.5E2", 150.0),
    ("RecommendedDisplayFrameRateInFloat", "FL", "1.5e2", 150.0),
    ("RecommendedDisplayFrameRateInFloat", "FL", "+7", 7.0),
    ("EventTimeOffset", "FD", "-.5e-3", -0.0005),
    ("EventTimeOffset", "FD", "12.", 12.0),
])
def test_floats_are_matched_as_numbers(keyword, vr, value, expected):
    assert vr_of(tag_for_keyword(keyword)) == vr
    (key,) = parse(IMAGE, (keyword, value)).matching
    assert key.value == expected and isinstance(key.value, float)


@pytest.mark.parametrize(("keyword", "vr"), [("RecommendedDisplayFrameRateInFloat", "FL"), ("EventTimeOffset", "FD")])
@pytest.mark.parametrize("value", ["abc", "1e5000", "1,5", "0x10"])
def test_what_is_no_float_is_refused_as_such(keyword, vr, value):
    assert message(IMAGE, (keyword, value)) == f"query parameter '{keyword}': {value!r} is not a valid {vr} value"


@pytest.mark.parametrize(("keyword", "vr", "value", "expected"), [
    ("TagAngleSecondAxis", "SS", "-5", -5),
    ("ReferencePixelX0", "SL", "-70000", -70000),
    ("SelectorSVValue", "SV", "-9000000000", -9000000000),
    ("SimpleFrameList", "UL", "4000000000", 4000000000),
    ("FileOffsetInContainer", "UV", "18446744073709551615", 18446744073709551615),
    ("SmallestImagePixelValue", "US", "5", 5),  # "US or SS": the first reading
])
def test_binary_integers_of_every_size_and_sign_are_matched_as_numbers(keyword, vr, value, expected):
    assert vr_of(tag_for_keyword(keyword)) == vr
    assert matched(parse(IMAGE, (keyword, value))) == {keyword: expected}


@pytest.mark.parametrize(("keyword", "vr", "value"), [
    ("TagAngleSecondAxis", "SS", "40000"),
    ("ReferencePixelX0", "SL", "3000000000"),
    ("SimpleFrameList", "UL", "-1"),
    ("FileOffsetInContainer", "UV", "-1"),
    ("TagAngleSecondAxis", "SS", "1.5"),
])
def test_integers_out_of_their_vrs_range_are_refused(keyword, vr, value):
    assert message(IMAGE, (keyword, value)) == f"query parameter '{keyword}': {value!r} is not a valid {vr} value"


@pytest.mark.parametrize(("keyword", "vr"), [("RecommendedDisplayFrameRateInFloat", "FL"),
                                             ("TagAngleSecondAxis", "SS"), ("StudyDate", "DA")])
def test_wildcards_are_refused_where_they_are_no_wildcards(keyword, vr):
    assert message(IMAGE, (keyword, "1*")) == f"query parameter '{keyword}': wildcards are not allowed for VR {vr}"
    assert matched(parse(IMAGE, (keyword, "*"))) == {keyword: None}


def test_integer_and_decimal_strings_are_checked_with_their_own_message():
    assert message(IMAGE, ("InstanceNumber", "abc")) == "query parameter 'InstanceNumber': 'abc' is not a valid IS value"
    assert message(IMAGE, ("SliceThickness", "1.2.3")) == "query parameter 'SliceThickness': '1.2.3' is not a valid DS value"


def test_unsupported_vrs_are_named():
    assert message(IMAGE, ("RecordKey", "x")) == \
        "query parameter 'RecordKey': matching on an attribute with VR OB is not supported"


@pytest.mark.parametrize(("keyword", "vr", "expected"), [
    ("StudyDate", "DA", "YYYYMMDD"),
    ("StudyTime", "TM", "HH[MM[SS[.FFFFFF]]]"),
    ("AcquisitionDateTime", "DT", "YYYY[MM[DD[HH[MM[SS[.FFFFFF]]]]]][+/-ZZXX]"),
])
def test_date_and_time_messages_give_the_expected_format(keyword, vr, expected):
    assert message(IMAGE, (keyword, "x1")) == (
        f"query parameter '{keyword}': 'x1' is not a valid {vr} value; expected {expected} or a range A-B, A- or -B")


def test_code_string_and_text_messages():
    assert message(SERIES, ("Modality", "ct")) == (
        "query parameter 'Modality': 'ct' is not a valid code string (A-Z, 0-9, space, _; at most 16)")
    assert message(STUDY, ("PatientID", "A" * 65)) == f"query parameter 'PatientID': {'A' * 61 + '...'!r} is not a valid LO value"
    assert message(STUDY, ("PatientID", "a\x01")) == "query parameter 'PatientID': control characters are not allowed"


def test_non_ascii_digits_are_refused_with_the_vr_named():
    assert message(STUDY, ("StudyDate", "\uff12\uff10\uff12\uff10")) == \
        "query parameter 'StudyDate': '\uff12\uff10\uff12\uff10' is not a valid DA value"
    assert message(IMAGE, ("Rows", "\u0665")) == "query parameter 'Rows': '\u0665' is not a valid US value"


def test_a_tag_may_be_given_in_upper_or_lower_case_hex():
    assert matched(parse(SERIES, ("0008103E", "abc"))) == {"SeriesDescription": "abc"}
    assert matched(parse(SERIES, ("0008103e", "abc"))) == {"SeriesDescription": "abc"}


# --- private attributes --------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["00091000", "0009FFFF", "FFFD1001"])
def test_private_data_elements_are_matched_as_lo(tag):
    assert matched(parse(STUDY, (tag, "x*"))) == {tag: "x*"}


@pytest.mark.parametrize("tag", ["00090010", "000900FF"])
def test_private_creators_are_matched_as_lo(tag):
    assert matched(parse(STUDY, (tag, "ACME"))) == {tag: "ACME"}


@pytest.mark.parametrize("tag", ["FFFF1001", "00070010", "00090005", "00090100", "00090FFF"])
def test_what_is_no_private_creator_or_data_element_is_refused(tag):
    assert message(STUDY, (tag, "x")) == f"query parameter {tag!r}: {tag!r} is not a queryable attribute"


def test_private_creator_element_bounds():
    assert is_private_creator(0x00090010) and is_private_creator(0x000900FF)
    assert not is_private_creator(0x0009000F) and not is_private_creator(0x00090100)
    assert not is_private_creator(0x00100010)


def test_vr_of_a_return_key_and_a_matching_key():
    assert vr_of(0x00091001) == "UN" and vr_of(0x00091001, matching=True) == "LO"
    assert vr_of(0x00090010) == "LO" and vr_of(0x00090010, matching=True) == "LO"
    assert vr_of(0x00280106) == "US"  # "US or SS"
    assert vr_of(0x00100010) == "PN"


# --- messages for the rest -----------------------------------------------------------------------------


def test_names_in_messages_are_shown_whole_up_to_64_characters():
    name = "A" + "a" * 63
    assert message(STUDY, (name, "x")) == f"query parameter {name!r}: unknown attribute {name!r}"
    longer = name + "a"
    shown = repr(longer[:61] + "...")
    assert message(STUDY, (longer, "x")) == f"query parameter {shown}: unknown attribute {shown}"


@pytest.mark.parametrize("keyword", ["QueryRetrieveLevel", "SpecificCharacterSet"])
def test_gateway_owned_keys_are_named_in_the_refusal(keyword):
    assert message(STUDY, (keyword, "STUDY")) == f"query parameter '{keyword}': {keyword} is set by the gateway"
    assert message(STUDY, (f"{tag_for_keyword(keyword):08X}", "x")).endswith(f": {keyword} is set by the gateway")


def test_repeats_and_sequences_messages():
    assert message(STUDY, ("limit", "1"), ("limit", "2")) == "query parameter 'limit': given more than once"
    assert message(STUDY, ("PatientID", "1"), ("00100020", "2")) == \
        "query parameter '00100020': the same attribute is given more than once"
    assert message(SERIES, ("RequestAttributesSequence", "x")) == (
        "query parameter 'RequestAttributesSequence': a sequence matches through its items: use Sequence.Attribute")
    assert message(STUDY, ("limit", "0")) == "query parameter 'limit': '0' is not an integer >= 1"
    assert message(STUDY, ("offset", "-1")) == "query parameter 'offset': '-1' is not an integer >= 0"


def test_an_empty_sequence_key_matches_universally():
    query = parse(SERIES, ("RequestAttributesSequence", ""))
    assert matched(query) == {"RequestAttributesSequence": None}


# --- the query is a value ------------------------------------------------------------------------------


def test_a_query_and_its_keys_are_immutable_values():
    query = parse(STUDY, ("PatientID", "1"))
    assert parse(STUDY, ("PatientID", "1")) == query and hash(parse(STUDY, ("PatientID", "1"))) == hash(query)
    with pytest.raises(dataclasses.FrozenInstanceError):
        query.limit = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        query.matching[0].value = "2"  # type: ignore[misc]
