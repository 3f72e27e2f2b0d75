import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomrst.dicomweb.accept import (
    MediaRange,
    negotiate,
    parse_accept,
    parse_content_type,
)
from dicomrst.dicomweb.negotiation import (
    NotAcceptable,
    QidoMediaType,
    negotiate_qido,
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


MALFORMED = [
    "text",
    "text/",
    "/json",
    "*/json",
    "a/b/c",
    "a b/c",
    "toto",
    "*",
    "a/b; q=2",
    "a/b; q=1.5",
    "a/b; q=abc",
    "a/b; q=-0.5",
    "a/b; q=.",
    "a/b; foo",
    "a/b; =x",
    'a/b; x="unterminated',
    "a/b; x=y z",
    "application/dicom+json; q",
]


@pytest.mark.parametrize("header", MALFORMED)
def test_a_header_of_malformed_elements_only_means_anything(header):
    # PS3.18 8.7.7: values that are not valid are ignored; with nothing left, the header says nothing.
    assert parse_accept(header) == [MediaRange("*", "*", {}, 1.0)]


@pytest.mark.parametrize("malformed", MALFORMED)
def test_malformed_elements_are_skipped_not_fatal(malformed):
    assert parse_accept(f"{malformed}, application/dicom+json") == [MediaRange("application", "dicom+json")]
    assert parse_accept(f"application/dicom+json;q=0.5,{malformed}") == [
        MediaRange("application", "dicom+json", {}, 0.5)]


@pytest.mark.parametrize("q, weight", [(".2", 0.2), ("0.2", 0.2), (".25", 0.25), ("1.", 1.0), ("0", 0.0),
                                       ('".5"', 0.5)])
def test_q_values_without_the_leading_zero(q, weight):
    ranges = parse_accept(f"a/b; q={q}, c/d; q=0.1")
    assert [(r.essence, r.q) for r in ranges] == ([("a/b", weight)] if weight else []) + [("c/d", 0.1)]


def test_java_default_accept_parses():
    # java.net.HttpURLConnection's default, as the brief quotes it and as Java really sends it (with a bare
    # "*", which is no media range and is skipped).
    assert [(r.essence, r.q) for r in parse_accept("text/html, image/gif, image/jpeg, */*; q=.2")] == [
        ("text/html", 1.0), ("image/gif", 1.0), ("image/jpeg", 1.0), ("*/*", 0.2)]
    assert [(r.essence, r.q) for r in parse_accept("text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2")] == [
        ("text/html", 1.0), ("image/gif", 1.0), ("image/jpeg", 1.0), ("*/*", 0.2)]


def test_empty_parameters_are_tolerated():
    assert parse_accept("a/b;, c/d;; x=1 ;") == [MediaRange("a", "b"), MediaRange("c", "d", {"x": "1"})]


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


@pytest.mark.parametrize(
    "accept",
    [
        "toto, application/dicom+json",
        "application/dicom+json; q=high",
        "toto",
        "text/html, image/gif, image/jpeg, */*; q=.2",
        "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2",
        'application/dicom+json; x="unterminated',
        # Something was not valid and nothing else can be produced: the header counts as */*.
        "toto, image/png",
        'multipart/related; type="not a media type"',
    ],
)
def test_negotiate_qido_ignores_what_is_not_valid(accept):
    assert negotiate_qido(accept) is QidoMediaType.JSON


@pytest.mark.parametrize("accept", [f"toto, {XML}", f"{XML}, application/dicom+json; q=high",
                                    "multipart/related; type=*/*", 'multipart/related; type="*/*"',
                                    'multipart/related; type="application/*"',
                                    'multipart/related; Type = "application/dicom+xml"'])
def test_negotiate_qido_xml_among_invalid_elements_and_with_a_wildcard_type(accept):
    assert negotiate_qido(accept) is QidoMediaType.XML


@pytest.mark.parametrize("accept", ["toto, application/dicom+json; q=0",
                                    "image/png, application/dicom+json;q=0, a/b;q=2"])
def test_what_the_client_excluded_is_not_guessed(accept):
    # With q=0 the client named what it refuses: falling back to */* might send exactly that.
    with pytest.raises(NotAcceptable):
        negotiate_qido(accept)


def test_negotiate_qido_every_element_valid_none_producible_is_still_406():
    with pytest.raises(NotAcceptable):
        negotiate_qido("text/html, image/gif, image/jpeg")
    with pytest.raises(NotAcceptable):
        negotiate_qido('multipart/related; type="image/*"')


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
def test_parse_accept_never_raises(header):
    ranges = parse_accept(header)
    assert isinstance(ranges, list)
    assert all(0 < r.q <= 1 for r in ranges)
    assert [r.q for r in ranges] == sorted((r.q for r in ranges), reverse=True)


_HEADERISH = st.text(alphabet=st.sampled_from(list('abcjson/+*;,=" \\q.0123456789-\t')), max_size=60)


@given(st.one_of(st.text(), _HEADERISH))
def test_negotiate_qido_only_raises_not_acceptable(header):
    try:
        assert isinstance(negotiate_qido(header), QidoMediaType)
    except NotAcceptable:
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


# --- Content-Type (STOW-RS request bodies) ---------------------------------------------------------------

BOUNDARY_73 = "9ab04b14-998e-4fee-9019-e8848abf0ed0-9ab04b14-998e-4fee-9019-e8848abf0ed0"


@pytest.mark.parametrize(
    "header",
    [
        f'multipart/related; type="application/dicom"; boundary={BOUNDARY_73}',
        f"multipart/related; type=application/dicom; boundary={BOUNDARY_73}",
        f'Multipart/Related; TYPE="application/dicom"; Boundary="{BOUNDARY_73}"',
        f'multipart/related ;type = "application/dicom" ; boundary = {BOUNDARY_73} ',
        f'multipart/related;type="application/dicom";boundary={BOUNDARY_73};',
        f'multipart/related; start="<a@b>"; type=application/dicom; junk; boundary={BOUNDARY_73}',
    ],
)
def test_content_type_parameters_quoted_or_not_in_any_case(header):
    content_type = parse_content_type(header)
    assert content_type is not None
    assert content_type.essence == "multipart/related"
    assert content_type.params["type"].strip() == "application/dicom"
    assert content_type.params["boundary"] == BOUNDARY_73


@pytest.mark.parametrize("boundary", ["----=_Part_0_1234.5678", "abc,def", "a:b?c=d", "(x)'+_,-./:=?"])
def test_content_type_unquoted_boundaries_with_specials(boundary):
    # JavaMail's `----=_Part_...` among them; werkzeug's parse_options_header cut it at the "=".
    content_type = parse_content_type(f"multipart/related; type=application/dicom; boundary={boundary}")
    assert content_type.params["boundary"] == boundary


def test_content_type_values_keep_their_case_and_quoted_specials():
    content_type = parse_content_type('multipart/related; boundary="Ab;c, d=e"; type=application/dicom')
    assert content_type.params == {"boundary": "Ab;c, d=e", "type": "application/dicom"}


@pytest.mark.parametrize("header", [None, "", "multipart", "/related", 'multipart/related x; boundary="y"'])
def test_content_type_without_a_media_type(header):
    assert parse_content_type(header) is None


def test_content_type_unterminated_quote_drops_only_that_parameter():
    content_type = parse_content_type('multipart/related; type=application/dicom; boundary="abc')
    assert content_type.params == {"type": "application/dicom"}
