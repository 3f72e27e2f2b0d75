import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomrst.dicomweb.media import (
    BadAcceptHeader,
    MediaRange,
    NotAcceptable,
    QidoMediaType,
    negotiate,
    negotiate_qido,
    parse_accept,
)

XML = 'multipart/related; type="application/dicom+xml"'


@pytest.mark.parametrize("header", [None, "", "   ", " , ,"])
def test_missing_or_empty_header_means_anything(header):
    assert parse_accept(header) == [MediaRange("*", "*", {}, 1.0)]


def test_quoted_params_may_contain_commas_and_semicolons():
    header = (
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1, '
        'application/x-test; note="a, b; c=d", application/json;q=0.5'
    )
    ranges = parse_accept(header)
    assert ranges == [
        MediaRange("multipart", "related", {"type": "application/dicom", "transfer-syntax": "1.2.840.10008.1.2.1"}),
        MediaRange("application", "x-test", {"note": "a, b; c=d"}),
        MediaRange("application", "json", {}, 0.5),
    ]


def test_quoted_pair_is_unescaped():
    (media_range,) = parse_accept(r'a/b; x="say \"hi\"\\"')
    assert media_range.params == {"x": 'say "hi"\\'}


def test_type_subtype_and_param_names_are_lowercased_values_kept():
    (media_range,) = parse_accept('Multipart/Related; TYPE="Application/DICOM+XML"; Q=0.7')
    assert (media_range.type, media_range.subtype) == ("multipart", "related")
    assert media_range.params == {"type": "Application/DICOM+XML"}
    assert media_range.q == 0.7


def test_sorted_by_q_descending_and_stable():
    ranges = parse_accept("a/b;q=0.5, c/d, e/f;q=0.5, g/h;q=1.0, i/j;q=0.9")
    assert [r.essence for r in ranges] == ["c/d", "g/h", "i/j", "a/b", "e/f"]


def test_q_zero_ranges_are_excluded():
    assert [r.essence for r in parse_accept("a/b;q=0, c/d;q=0.000")] == []
    assert [r.essence for r in parse_accept("a/b;q=0, c/d")] == ["c/d"]


def test_accept_extensions_after_q_are_not_media_params():
    (media_range,) = parse_accept("a/b; level=1; q=0.3; ext=2")
    assert media_range.params == {"level": "1"}
    assert media_range.q == 0.3


def test_wildcards_parse():
    assert [r.essence for r in parse_accept("*/*, application/*")] == ["*/*", "application/*"]


@pytest.mark.parametrize(
    "header",
    [
        "text",
        "text/",
        "/json",
        "*/json",
        "a/b/c",
        "a b/c",
        "a/b; q=2",
        "a/b; q=1.5",
        "a/b; q=abc",
        "a/b; q=-0.5",
        "a/b; foo",
        "a/b; =x",
        'a/b; x="unterminated',
        "a/b; x=y z",
        "application/dicom+json; q",
    ],
)
def test_malformed_headers_are_rejected(header):
    with pytest.raises(BadAcceptHeader) as info:
        parse_accept(header)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("malformed Accept header")


def test_media_range_matches_with_wildcards():
    assert MediaRange("*", "*").matches("application/dicom")
    assert MediaRange("application", "*").matches("application/dicom")
    assert not MediaRange("application", "*").matches("image/jpeg")
    assert MediaRange("application", "dicom").matches("Application/DICOM")
    assert not MediaRange("application", "dicom").matches("application/dicom+json")


def test_media_range_is_hashable():
    assert len({MediaRange("a", "b", {"x": "1"}), MediaRange("a", "b", {"x": "1"})}) == 1


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, QidoMediaType.JSON),
        ("", QidoMediaType.JSON),
        ("*/*", QidoMediaType.JSON),
        ("application/*", QidoMediaType.JSON),
        ("application/json", QidoMediaType.JSON),
        ("application/dicom+json", QidoMediaType.JSON),
        ("application/dicom+json; charset=utf-8", QidoMediaType.JSON),
        (XML, QidoMediaType.XML),
        ("multipart/related; type=application/dicom+xml", QidoMediaType.XML),
        ('multipart/related; TYPE="Application/DICOM+XML"', QidoMediaType.XML),
        ("multipart/related", QidoMediaType.XML),
        ("multipart/*", QidoMediaType.XML),
        ("image/jpeg, */*;q=0.1", QidoMediaType.JSON),
        (f"application/dicom+json;q=0.5, {XML}", QidoMediaType.XML),
        (f"{XML}; q=0.4, application/dicom+json;q=0.5", QidoMediaType.JSON),
        (f'multipart/related; type="application/dicom", {XML};q=0.2', QidoMediaType.XML),
    ],
)
def test_negotiate_qido(accept, expected):
    assert negotiate_qido(accept) is expected


@pytest.mark.parametrize(
    "accept",
    [
        "image/jpeg",
        "application/dicom",
        "application/dicom+xml",
        'multipart/related; type="application/dicom"',
        "application/dicom+json;q=0",
        "text/*",
    ],
)
def test_negotiate_qido_not_acceptable_lists_what_is_available(accept):
    with pytest.raises(NotAcceptable) as info:
        negotiate_qido(accept)
    message = str(info.value)
    assert "application/dicom+json" in message
    assert "application/dicom+xml" in message
    assert info.value.available == ("application/dicom+json", XML)


def test_negotiate_qido_malformed_is_bad_request_not_406():
    with pytest.raises(BadAcceptHeader):
        negotiate_qido("application/dicom+json; q=high")


def test_generic_negotiate_can_use_params():
    # The shape WADO-RS will use: pick a transfer syntax from the media range parameters.
    def choose(media_range: MediaRange) -> str | None:
        if media_range.matches("application/dicom"):
            return media_range.params.get("transfer-syntax", "1.2.840.10008.1.2.1")
        return None

    assert negotiate('application/dicom; transfer-syntax="1.2.840.10008.1.2.4.50"', choose, []) == (
        "1.2.840.10008.1.2.4.50"
    )
    with pytest.raises(NotAcceptable):
        negotiate("image/png", choose, ["application/dicom"])


@given(st.text())
def test_parse_accept_only_raises_bad_accept_header(header):
    try:
        ranges = parse_accept(header)
    except BadAcceptHeader:
        return
    assert ranges
    assert all(0 < r.q <= 1 for r in ranges)
    assert [r.q for r in ranges] == sorted((r.q for r in ranges), reverse=True)


_HEADERISH = st.text(alphabet=st.sampled_from(list('abcjson/+*;,=" \\q.0123456789-\t')), max_size=60)


@given(st.one_of(st.text(), _HEADERISH))
def test_negotiate_qido_only_raises_documented_errors(header):
    try:
        assert isinstance(negotiate_qido(header), QidoMediaType)
    except (BadAcceptHeader, NotAcceptable):
        pass


_TOKEN = st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyz0123456789-+.")), min_size=1, max_size=10)
_QUOTABLE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)


@given(
    st.lists(
        st.tuples(_TOKEN, _TOKEN, st.dictionaries(_TOKEN.filter(lambda k: k != "q"), _QUOTABLE, max_size=3)),
        min_size=1,
        max_size=4,
    )
)
def test_parse_accept_round_trips_quoted_params(ranges):
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = ", ".join(
        f"{t}/{s}" + "".join(f"; {name}={quote(value)}" for name, value in params.items()) for t, s, params in ranges
    )
    assert parse_accept(header) == [MediaRange(t, s, params) for t, s, params in ranges]
