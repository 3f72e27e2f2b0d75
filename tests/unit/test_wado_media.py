import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomrst.dicomweb.negotiation import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    FrameRepresentation,
    InstanceRepresentation,
    NotAcceptable,
    negotiate_bulkdata,
    negotiate_frames,
    negotiate_instances,
)

DICOM = 'multipart/related; type="application/dicom"'
J2K = "1.2.840.10008.1.2.4.90"
JPEG = "1.2.840.10008.1.2.4.50"
IMPLICIT = "1.2.840.10008.1.2"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"  # a UID pydicom knows, but not a transfer syntax
OCTET = "application/octet-stream"


def multipart(rendition_syntaxes: tuple[str, ...] = (EXPLICIT_VR_LITTLE_ENDIAN,)) -> InstanceRepresentation:
    return InstanceRepresentation("multipart", rendition_syntaxes)


# --- negotiate_instances ---------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [None, "", "*/*", "multipart/*", "application/*", "image/png, */*;q=0.1"])
def test_anything_means_multipart_in_the_default_syntax(accept):
    assert negotiate_instances(accept, single_instance=True) == multipart()


@pytest.mark.parametrize(
    "accept",
    [
        DICOM,
        "multipart/related; type=application/dicom",
        'multipart/related; TYPE="Application/DICOM"',
        "multipart/related;type= application/dicom ",
        "multipart/related",
    ],
)
def test_multipart_dicom_type_is_case_insensitive_quotes_optional_and_may_be_missing(accept):
    assert negotiate_instances(accept, single_instance=False) == multipart()


@pytest.mark.parametrize(
    ("parameter", "expected"),
    [(f"transfer-syntax={J2K}", J2K), (f'transfer-syntax="{J2K}"', J2K), ("transfer-syntax=*", "*"),
     (f"Transfer-Syntax={IMPLICIT}", IMPLICIT)],
)
def test_transfer_syntax_parameter(parameter, expected):
    assert negotiate_instances(f"{DICOM}; {parameter}", single_instance=False) == multipart((expected,))


def test_bare_application_dicom_is_single_only_for_one_instance():
    assert negotiate_instances("application/dicom", single_instance=True) == InstanceRepresentation(
        "single", (EXPLICIT_VR_LITTLE_ENDIAN,)
    )
    assert negotiate_instances(f"application/dicom; transfer-syntax={JPEG}", single_instance=True) == (
        InstanceRepresentation("single", (JPEG,))
    )
    # A study or series cannot be one application/dicom body: read leniently as multipart.
    assert negotiate_instances("application/dicom", single_instance=False) == multipart()


def test_zip_follows_the_same_transfer_syntax_rule():
    assert negotiate_instances("application/zip", single_instance=False) == InstanceRepresentation(
        "zip", (EXPLICIT_VR_LITTLE_ENDIAN,)
    )
    assert negotiate_instances("application/zip; transfer-syntax=*", single_instance=True) == InstanceRepresentation(
        "zip", ("*",)
    )


def test_ranges_for_the_same_container_collect_syntaxes_in_q_order():
    accept = (
        f"{DICOM}; transfer-syntax={JPEG}; q=0.5, "
        f"{DICOM}; transfer-syntax={J2K}, "
        f"{DICOM}; transfer-syntax={JPEG}; q=0.4, "
        "*/*; q=0.1"
    )
    assert negotiate_instances(accept, single_instance=False) == multipart((J2K, JPEG, EXPLICIT_VR_LITTLE_ENDIAN))


def test_ranges_for_another_container_are_not_mixed_in():
    accept = f"application/zip; transfer-syntax={J2K}, {DICOM}; transfer-syntax=*; q=0.9, application/zip; q=0.2"
    assert negotiate_instances(accept, single_instance=False) == InstanceRepresentation(
        "zip", (J2K, EXPLICIT_VR_LITTLE_ENDIAN)
    )
    accept = f"application/dicom; transfer-syntax={J2K}, {DICOM}; transfer-syntax=*; q=0.9"
    assert negotiate_instances(accept, single_instance=True) == InstanceRepresentation("single", (J2K,))


NOT_UIDS = ["abc", "1.2..3", "1.2.3a", ".1.2", "1.2.", "", "1" * 65, "**"]


@pytest.mark.parametrize("value", NOT_UIDS)
def test_a_transfer_syntax_that_is_not_a_uid_makes_its_range_ignored(value):
    # PS3.18 8.7.7: not valid, so ignored; with nothing else usable, the header counts as */*.
    assert negotiate_instances(f'{DICOM}; transfer-syntax="{value}"', single_instance=False) == multipart()
    accept = f'{DICOM}; transfer-syntax="{value}", {DICOM}; transfer-syntax={J2K}; q=0.5'
    assert negotiate_instances(accept, single_instance=False) == multipart((J2K,))
    accept = f'application/dicom; transfer-syntax="{value}", application/zip; q=0.5'
    assert negotiate_instances(accept, single_instance=True) == InstanceRepresentation("zip", (EXPLICIT_VR_LITTLE_ENDIAN,))


@pytest.mark.parametrize(
    "accept",
    [
        'multipart/related; type="*/*"',
        "multipart/related; type=*/*",
        'multipart/related; type="application/*"',
        'multipart/related; Type = " */* "',
        "toto, multipart/related; type=application/dicom",
        "text/html, image/gif, image/jpeg, */*; q=.2",
        "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2",
        "multipart/related; type=application/dicom; q=high",
        "image/png, toto",
    ],
)
def test_wildcard_part_type_and_invalid_elements_give_the_default(accept):
    assert negotiate_instances(accept, single_instance=False) == multipart()
    assert negotiate_instances(accept, single_instance=True) == multipart()


def test_wildcard_part_type_keeps_its_transfer_syntax():
    assert negotiate_instances('multipart/related; type="*/*"; transfer-syntax=*', False) == multipart(("*",))


def test_every_element_valid_none_producible_is_still_406():
    with pytest.raises(NotAcceptable):
        negotiate_instances('text/html, image/gif, image/jpeg, multipart/related; type="image/*"', False)
    with pytest.raises(NotAcceptable):  # q=0 excludes: nothing is guessed
        negotiate_instances("toto, application/dicom; q=0, multipart/related; q=0, application/zip;q=0", True)


@pytest.mark.parametrize("unknown", ["1.2.3.4", CT_IMAGE_STORAGE])
def test_a_uid_that_is_no_known_transfer_syntax_is_skipped(unknown):
    accept = f"{DICOM}; transfer-syntax={unknown}, application/zip; q=0.5"
    assert negotiate_instances(accept, single_instance=False) == InstanceRepresentation(
        "zip", (EXPLICIT_VR_LITTLE_ENDIAN,)
    )
    accept = f"{DICOM}; transfer-syntax={unknown}, {DICOM}; transfer-syntax={J2K}; q=0.5"
    assert negotiate_instances(accept, single_instance=False) == multipart((J2K,))
    with pytest.raises(NotAcceptable):
        negotiate_instances(f"{DICOM}; transfer-syntax={unknown}", single_instance=False)


@pytest.mark.parametrize(
    "accept",
    [
        "image/jpeg",
        "application/dicom+json",
        "application/json",
        'multipart/related; type="application/dicom+xml"',
        'multipart/related; type="image/jpeg"',
        "text/*",
        "application/dicom; q=0",
    ],
)
def test_other_types_are_not_acceptable_and_the_message_lists_what_is(accept):
    with pytest.raises(NotAcceptable) as info:
        negotiate_instances(accept, single_instance=True)
    assert info.value.available == (DICOM, "application/dicom", "application/zip")
    with pytest.raises(NotAcceptable) as info:
        negotiate_instances(accept, single_instance=False)
    assert info.value.available == (DICOM, "application/zip")
    assert DICOM in str(info.value)


# --- negotiate_frames ------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [
    None, "", "*/*", "multipart/related", "multipart/*", "text/html, */*; q=0.2",
    # What the dicomweb_client package sends by default, and other spellings of a wildcard part type.
    'multipart/related; type="*/*"', "multipart/related; type=*/*", 'multipart/related; TYPE = "*/*"',
    'multipart/related; type="*/*"; transfer-syntax=*',
    # Java's default Accept; invalid elements and parameters are ignored.
    "text/html, image/gif, image/jpeg, */*; q=.2", "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2",
    "toto", "multipart/related; type=; q=1", 'multipart/related; type="*/*"; transfer-syntax=x',
])
def test_frames_default_to_the_native_type(accept):
    assert negotiate_frames(accept, "image/jp2") == FrameRepresentation("image/jp2", decompress=False)
    assert negotiate_frames(accept, OCTET) == FrameRepresentation(OCTET, decompress=False)


@pytest.mark.parametrize(
    "accept",
    [
        f'multipart/related; type="{OCTET}"',
        f"multipart/related; type={OCTET}",
        f'multipart/related; type="Application/Octet-Stream"; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}',
        f'multipart/related; type="{OCTET}"; transfer-syntax=*',
    ],
)
def test_octet_stream_frames_decompress_only_when_stored_compressed(accept):
    assert negotiate_frames(accept, "image/jls") == FrameRepresentation(OCTET, decompress=True)
    assert negotiate_frames(accept, OCTET) == FrameRepresentation(OCTET, decompress=False)


def test_the_native_compressed_type_is_sent_as_stored():
    assert negotiate_frames('multipart/related; type="image/jp2"', "image/jp2") == FrameRepresentation("image/jp2", False)
    assert negotiate_frames("multipart/related; type=VIDEO/h265", "video/H265") == FrameRepresentation("video/H265", False)


def test_frames_follow_q_order():
    accept = f'multipart/related; type="{OCTET}"; q=0.5, multipart/related; type="image/dicom-rle"'
    assert negotiate_frames(accept, "image/dicom-rle") == FrameRepresentation("image/dicom-rle", False)
    accept = f'multipart/related; type="{OCTET}", multipart/related; type="image/dicom-rle"; q=0.5'
    assert negotiate_frames(accept, "image/dicom-rle") == FrameRepresentation(OCTET, True)


@pytest.mark.parametrize(
    "accept",
    [
        'multipart/related; type="image/jpeg"',  # another compressed type: frames are never re-encoded
        "image/jp2",  # frames come in a multipart body only
        OCTET,
        f'multipart/related; type="{OCTET}"; transfer-syntax={J2K}',
        "application/dicom",
    ],
)
def test_frames_not_acceptable(accept):
    with pytest.raises(NotAcceptable) as info:
        negotiate_frames(accept, "image/jp2")
    assert info.value.available == ('multipart/related; type="image/jp2"', f'multipart/related; type="{OCTET}"')


def test_frames_bad_transfer_syntax_makes_its_range_ignored():
    assert negotiate_frames(f'multipart/related; type="{OCTET}"; transfer-syntax=x', "image/jp2") == (
        FrameRepresentation("image/jp2", False))
    accept = f'multipart/related; type="{OCTET}"; transfer-syntax=x, multipart/related; type="{OCTET}"; q=0.1'
    assert negotiate_frames(accept, "image/jp2") == FrameRepresentation(OCTET, True)


def test_wildcard_part_types_for_frames():
    assert negotiate_frames('multipart/related; type="image/*"', "image/jp2") == FrameRepresentation("image/jp2", False)
    # application/* covers raw frames only, for compressed ones that means decoding.
    assert negotiate_frames('multipart/related; type="application/*"', "image/jp2") == FrameRepresentation(OCTET, True)
    assert negotiate_frames('multipart/related; type="application/*"', OCTET) == FrameRepresentation(OCTET, False)
    # Explicit VR Little Endian is named: only raw frames are in it.
    accept = f'multipart/related; type="*/*"; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}'
    assert negotiate_frames(accept, "image/jp2") == FrameRepresentation(OCTET, True)
    assert negotiate_frames(accept, OCTET) == FrameRepresentation(OCTET, False)
    assert negotiate_frames(f'multipart/related; type="*/*"; transfer-syntax={J2K}', "image/jp2") == (
        FrameRepresentation("image/jp2", False))
    with pytest.raises(NotAcceptable):
        negotiate_frames('multipart/related; type="image/*"', OCTET)
    with pytest.raises(NotAcceptable):
        negotiate_frames('multipart/related; type="*/*"; transfer-syntax=1.2.3.4', "image/jp2")


# --- negotiate_bulkdata ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [None, "", "*/*", OCTET, "multipart/related", "multipart/*", f'multipart/related; type="{OCTET}"',
     f"image/jpeg, multipart/related; type={OCTET}; q=0.3",
     'multipart/related; type="*/*"', "multipart/related; type=*/*", 'multipart/related; type="application/*"',
     "text/html, image/gif, image/jpeg, */*; q=.2", f"toto, {OCTET}", "image/jpeg, toto"],
)
def test_bulkdata_acceptable(accept):
    assert negotiate_bulkdata(accept) is None


@pytest.mark.parametrize(
    "accept",
    ["image/jpeg", 'multipart/related; type="image/jpeg"', "application/dicom", "application/*", f"{OCTET};q=0"],
)
def test_bulkdata_not_acceptable(accept):
    with pytest.raises(NotAcceptable) as info:
        negotiate_bulkdata(accept)
    assert info.value.available == (f'multipart/related; type="{OCTET}"',)


def test_bulkdata_malformed_header_is_ignored():
    assert negotiate_bulkdata("application/octet-stream; q=2") is None
    with pytest.raises(NotAcceptable):
        negotiate_bulkdata('multipart/related; type="image/*"')


# --- properties --------------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "multipart/related", "application/dicom", "application/zip", "*/*", "multipart/*", "image/jp2",
        OCTET, "; type=", '"', "application/dicom", OCTET, "image/jp2", "; transfer-syntax=", J2K,
        EXPLICIT_VR_LITTLE_ENDIAN, "1.2.3", "*", "; q=0.5", ";q=0", ", ", ",", " ", "x", "\\", "=", ";",
    ]
)
_HEADERS = st.one_of(st.none(), st.text(), st.lists(_PIECES, max_size=12).map("".join))


@given(_HEADERS, st.booleans())
def test_negotiate_instances_only_raises_not_acceptable(header, single_instance):
    try:
        rendition = negotiate_instances(header, single_instance)
    except NotAcceptable:
        return
    assert rendition.container in ("multipart", "zip", "single" if single_instance else "multipart")
    assert rendition.transfer_syntaxes
    assert len(set(rendition.transfer_syntaxes)) == len(rendition.transfer_syntaxes)


@given(_HEADERS, st.sampled_from(["image/jp2", OCTET, "image/jpeg", "video/H265"]))
def test_negotiate_frames_only_raises_not_acceptable(header, native):
    try:
        rendition = negotiate_frames(header, native)
    except NotAcceptable:
        return
    assert rendition.media_type in (native, OCTET)
    assert rendition.decompress == (rendition.media_type != native)


@given(_HEADERS)
def test_negotiate_bulkdata_only_raises_not_acceptable(header):
    try:
        negotiate_bulkdata(header)
    except NotAcceptable:
        pass
