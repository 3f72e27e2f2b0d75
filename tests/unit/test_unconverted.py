import io

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pynetdicom.dsutils import decode, encode

from dicomrst.dicomweb.unconverted import has_value, text_value


def _over_the_wire(ds: Dataset) -> Dataset:
    return decode(io.BytesIO(encode(ds, False, True)), False, True)


def _answer() -> Dataset:
    ds = Dataset()
    ds.StudyInstanceUID = "1.2.3"  # odd length: padded with a NUL on the wire
    ds.NumberOfStudyRelatedSeries = "2"
    ds.NumberOfStudyRelatedInstances = None
    ds.ModalitiesInStudy = ""
    ds.PatientName = "Müller"
    return _over_the_wire(ds)


def test_values_are_read_without_converting():
    answer = _answer()
    assert text_value(answer, 0x0020000D) == "1.2.3"
    assert has_value(answer, 0x00201206)
    assert not has_value(answer, 0x00201208)
    assert not has_value(answer, 0x00080061)
    assert not has_value(answer, 0x0020000E) and text_value(answer, 0x0020000E) == ""
    assert all(isinstance(element, RawDataElement) for element in answer.values() if element.value)


def test_converted_elements_read_the_same():
    raw, converted = _answer(), _answer()
    for element in converted:  # iterating converts every element
        assert not isinstance(element, RawDataElement)
    for tag in (0x0020000D, 0x00201206, 0x00201208, 0x00080061, 0x0020000E):
        assert has_value(raw, tag) == has_value(converted, tag)
    assert text_value(raw, 0x0020000D) == text_value(converted, 0x0020000D) == "1.2.3"


def test_text_that_is_not_ascii_is_no_uid():
    ds = Dataset()
    ds[0x0020000D] = RawDataElement(0x0020000D, "UI", 4, "1.2é".encode("latin-1"), 0, False, True)
    assert text_value(ds, 0x0020000D) == "1.2\ufffd"
