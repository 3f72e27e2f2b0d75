"""The S3 index on its own, on a real SQLite file: matching in SQL agrees with the matching engine
(``dicomrst.matching``) value by value, headers are read from ranges until the pixel data, the config
reads, migrations run once."""
from __future__ import annotations

import multiprocessing
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.datadict import tag_for_keyword
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sqlalchemy import Engine, create_engine, inspect, select, text

from dicomrst.config.reading import ConfigError, Section
from dicomrst.index.config import IndexConfig, attribute_tags, read_index_config
from dicomrst.index.headers import FIRST_RANGE, NotAnInstance, read_object_header
from dicomrst.index.schema import MIGRATIONS, attribute_values, instances, metadata, migrate, schema_version
from dicomrst.index.values import key_condition, value_rows
from dicomrst.matching import key_values, match_values
from tests.unit.test_matching import key as matching_key


def prepared(engine: Engine) -> Engine:
    """The index's tables, with the one instance whose values the tests vary."""
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(instances.insert().values(id=1, bucket="b", object_key="k", study_uid="1", series_uid="2",
                                                     sop_uid="3", patient_id="", size=0, indexed_at=0, header="{}"))
    return engine


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return prepared(create_engine(f"sqlite:///{tmp_path_factory.mktemp('index')}/values.sqlite"))


def sql_matches(engine, element: DataElement, stored: list[str]) -> bool:
    """Whether an entity whose attribute holds ``stored`` is selected by ``element`` in SQL."""
    tag, vr = int(element.tag), element.VR
    keys = key_values(element)
    with engine.begin() as connection:
        connection.execute(attribute_values.delete())
        rows = [row for value in stored for row in value_rows(DataElement(tag, vr, value))]
        if rows:
            connection.execute(attribute_values.insert(), [{**row, "instance_id": 1} for row in rows])
        found = connection.execute(select(attribute_values.c.instance_id).where(
            attribute_values.c.tag == tag, key_condition(vr, keys, engine.dialect.name))).first()
    return found is not None


def engine_matches(element: DataElement, stored: list) -> bool:
    """The matching engine's answer for an entity whose attribute holds ``stored``, read as pydicom reads
    it (a stored PN '=1=' is '=1'), as the sample PACS compares it."""
    held = [text for value in stored for text in key_values(DataElement(element.tag, element.VR, value))]
    return match_values(element, held)


EXAMPLES = [
    ("PatientName:PN", "Doe^Jane", ["DOE^JANE"]),
    ("PatientName:PN", "Doe^J*", ["Doe^Jane"]),
    ("PatientName:PN", "doe^?ane", ["Doe^Jane"]),
    ("PatientName:PN", "Doe^J", ["Doe^Jane"]),
    ("PatientName:PN", "Yamada^Tarou", ["Yamada^Tarou=山田^太郎"]),
    ("PatientName:PN", "山田^太郎", ["Yamada^Tarou=山田^太郎"]),
    ("PatientName:PN", "Yamada^Tarou=山田^太郎", ["Yamada^Tarou=山田^太郎"]),
    ("PatientName:PN", "Yamada^Tarou=*", ["Yamada^Tarou=山田^太郎"]),
    ("PatientName:PN", "Yamada^Tarou=", ["Yamada^Tarou=山田^太郎"]),
    ("PatientName:PN", "Doe^Jane^^", ["Doe^Jane"]),
    ("PatientName:PN", "Müller*", ["MÜLLER^JÜRGEN"]),
    ("PatientName:PN", "a[b]*", ["a[b]c"]),
    ("PatientName:PN", "a%*", ["a_b"]),
    ("PatientID:LO", "abc", ["ABC"]),
    ("PatientID:LO", "A*C", ["ABBC"]),
    ("PatientID:LO", "a*", ["ABC"]),
    ("PatientID:LO", "A_C", ["ABC"]),
    ("PatientID:LO", "A%", ["ABC"]),
    ("PatientID:LO", "[A]*", ["[A]BC"]),
    ("Modality:CS", "CT", ["MR", "CT"]),
    ("StudyDate:DA", "20200101-20201231", ["20200615"]),
    ("StudyDate:DA", "20200101-20201231", ["20210101"]),
    ("StudyDate:DA", "-20200101", ["20191231"]),
    ("StudyDate:DA", "20200101-", ["20191231"]),
    ("StudyDate:DA", "20200101", ["2020.01.01"]),
    ("StudyTime:TM", "18-", ["185959.999"]),
    ("StudyTime:TM", "-18", ["185959"]),
    ("StudyTime:TM", "-18", ["190000"]),
    ("StudyTime:TM", "1015", ["101500"]),
    ("AcquisitionDateTime:DT", "20200101-20200102", ["20200102235959"]),
    ("AcquisitionDateTime:DT", "20200101-20200102", ["20200103"]),
    ("StudyInstanceUID:UI", ["1.2.3", "1.2.4"], ["1.2.4"]),
    ("StudyInstanceUID:UI", ["1.2.3", "1.2.4"], ["1.2.5"]),
    ("StudyInstanceUID:UI", "1.2.3", ["1.2.30"]),
    ("SeriesNumber:IS", "7", ["7"]),
    ("SeriesNumber:IS", "7", ["07"]),
    ("SeriesNumber:IS", "7", ["8"]),
    ("SliceThickness:DS", "2.5", ["2.50"]),
    ("Rows:US", 512, [512]),
    ("Rows:US", 512, [256]),
]


@pytest.mark.parametrize("keyword_vr, key_value, stored", EXAMPLES)
def test_sql_matches_as_the_engine(database, keyword_vr: str, key_value, stored: list):
    element = matching_key(keyword_vr, key_value)
    assert sql_matches(database, element, stored) == engine_matches(element, stored)


def test_the_examples_match_some_and_not_all(database):
    outcomes = [engine_matches(matching_key(k, v), stored) for k, v, stored in EXAMPLES]
    assert 10 < sum(outcomes) < len(outcomes) - 10


_TEXT = st.text(alphabet="AaBbÜü^=*?%_[] 1", min_size=1, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keyword_vr=st.sampled_from(["PatientName:PN", "PatientID:LO", "Modality:CS"]), key_value=_TEXT,
       stored=st.lists(_TEXT.filter(lambda text: "*" not in text and "?" not in text), min_size=1, max_size=2))
def test_sql_matches_as_the_engine_for_any_text(database, keyword_vr: str, key_value: str, stored: list[str]):
    element = matching_key(keyword_vr, key_value)
    assert sql_matches(database, element, stored) == engine_matches(element, stored)


_DATE = st.dates().map(lambda d: d.strftime("%Y%m%d"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.none() | _DATE, end=st.none() | _DATE, stored=_DATE)
def test_sql_date_ranges_as_the_engine(database, start: str | None, end: str | None, stored: str):
    key_value = f"{start or ''}-{end or ''}" if start or end else (stored if start is None else start)
    element = matching_key("StudyDate:DA", key_value)
    assert sql_matches(database, element, [stored]) == engine_matches(element, [stored])


def _instance(**attributes) -> Dataset:
    dataset = Dataset()
    dataset.file_meta = Dataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID = generate_uid()
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    return dataset


def _bytes(dataset: Dataset) -> bytes:
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


class Ranges:
    def __init__(self, data: bytes) -> None:
        self.data, self.asked = data, []

    def __call__(self, start: int, end: int) -> bytes:
        self.asked.append((start, end))
        return self.data[start:end]


def test_a_header_is_read_up_to_the_pixel_data():
    data = _bytes(_instance(PatientName="Doe^Jane", Rows=512, Columns=512, BitsAllocated=8,
                            PixelData=b"\0" * (512 * 512)))
    assert len(data) > FIRST_RANGE
    ranges = Ranges(data)
    header = read_object_header(ranges, len(data))
    assert header.PatientName == "Doe^Jane" and "PixelData" not in header
    assert ranges.asked == [(0, FIRST_RANGE)]


def test_a_long_header_takes_longer_ranges():
    long_text = "x" * 40000
    data = _bytes(_instance(PatientName="Doe^Jane", ImageComments=long_text, AdditionalPatientHistory=long_text,
                            BitsAllocated=8, PixelData=b"\0" * 300000))
    ranges = Ranges(data)
    header = read_object_header(ranges, len(data))
    assert header.AdditionalPatientHistory == long_text and header.ImageComments == long_text
    assert ranges.asked == [(0, FIRST_RANGE), (0, 4 * FIRST_RANGE)]


def test_an_object_without_pixel_data_is_read_whole():
    data = _bytes(_instance(PatientName="Doe^Jane", ImageComments="y" * 40000, AdditionalPatientHistory="z" * 40000))
    ranges = Ranges(data)
    assert read_object_header(ranges, len(data)).AdditionalPatientHistory == "z" * 40000
    assert ranges.asked[-1] == (0, len(data))


@pytest.mark.parametrize("data", [b"", b"not dicom at all", b"\0" * 128 + b"DICM" + b"\xff" * 10])
def test_what_is_not_dicom_is_said_so(data: bytes):
    with pytest.raises(NotAnInstance):
        read_object_header(Ranges(data), len(data))


def _read(raw) -> IndexConfig:
    section = Section({"index": raw}, "aets[0]")
    config = read_index_config(section)
    section.raise_problems()
    return config


def test_index_config_as_a_url_or_a_mapping():
    assert _read("postgresql://dicomrst@db/index") == IndexConfig(url="postgresql://dicomrst@db/index")
    assert _read(None) == IndexConfig()
    mapping = _read({"url": "sqlite:////var/lib/dicomrst/research.sqlite", "attributes": ["BodyPartExamined", "00191010"]})
    assert mapping.url == "sqlite:////var/lib/dicomrst/research.sqlite"
    assert attribute_tags(mapping.attributes) == (tag_for_keyword("BodyPartExamined"), 0x00191010)


@pytest.mark.parametrize("raw, message", [
    ("mysql://db/index", "is not a database URL"),
    ("/var/lib/index.sqlite", "is not a database URL"),
    ({"url": 5}, "is not a database URL"),
    ({"attributes": "BodyPartExamined"}, "expected a list"),
    ({"attributes": ["body part"]}, "is not an attribute keyword"),
])
def test_index_config_problems_name_their_key(raw, message: str):
    with pytest.raises(ConfigError, match=message) as raised:
        _read(raw)
    assert str(raised.value).startswith("aets[0].index")


@pytest.mark.parametrize("name, message", [("NoSuchKeyword", "not a DICOM attribute keyword"),
                                           ("RequestAttributesSequence", "is a sequence")])
def test_attributes_pydicom_does_not_know_or_sequences_are_refused(name: str, message: str):
    with pytest.raises(ConfigError, match=message):
        attribute_tags((name,))


def _migrate(url: str) -> int:
    return migrate(create_engine(url, connect_args={"timeout": 30}))


def test_migrations_run_once_even_when_processes_start_together(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/index.sqlite"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        versions = pool.map(_migrate, [url] * 4)
    assert versions == [len(MIGRATIONS)] * 4
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(select(schema_version.c.version)).scalars().all() == [len(MIGRATIONS)]
    assert set(metadata.tables) <= set(engine.dialect.get_table_names(engine.connect()))
    assert _migrate(url) == len(MIGRATIONS)


def test_an_index_of_version_1_gets_the_metadata_column(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path}/old.sqlite")
    migrate(engine)
    with engine.begin() as connection:  # as version 1 of the code left it
        connection.execute(text("ALTER TABLE instances DROP COLUMN metadata"))
        connection.execute(schema_version.update().values(version=1))
    assert migrate(engine) == len(MIGRATIONS) == 2
    assert "metadata" in {column["name"] for column in inspect(engine).get_columns("instances")}


def test_configured_attributes_are_indexed_and_the_others_still_match(tmp_path: Path):
    from dicomrst.dicomweb.query import QueryLevel, parse_qido_query
    from dicomrst.index.instance_index import InstanceIndex

    body_part = tag_for_keyword("BodyPartExamined")
    plain = InstanceIndex(f"sqlite:///{tmp_path}/plain.sqlite", "b", "AET")
    extended = InstanceIndex(f"sqlite:///{tmp_path}/extended.sqlite", "b", "AET", (body_part,))
    for index in (plain, extended):
        for number, part in enumerate(["CHEST", "HEAD", "CHEST"]):
            instance = _instance(BodyPartExamined=part, PatientID=f"P{number}")
            index.add(instance, f"{instance.StudyInstanceUID}/{number}.dcm", 100)
    held = []
    for index in (plain, extended):
        with index.engine.connect() as connection:
            held.append(connection.execute(select(attribute_values.c.value)
                                           .where(attribute_values.c.tag == body_part)).scalars().all())
        query = parse_qido_query(QueryLevel.STUDY, [("BodyPartExamined", "CH*"), ("includefield", "PatientID")])
        assert sorted(str(match.PatientID) for match in index.search(query)) == ["P0", "P2"]
    assert [sorted(values) for values in held] == [[], ["CHEST", "CHEST", "HEAD"]]
