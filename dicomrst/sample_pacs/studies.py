"""Synthetic CT and MR studies: complete Part-10-ready datasets for the sample PACS.

Everything is derived from a ``random.Random`` so that the same seed always gives
the same UIDs, headers and pixels; tests compare what the PACS returns with what
this module generates.
"""

from __future__ import annotations

import copy
import random
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

__all__ = [
    "PATIENTS",
    "SAMPLE_SEED",
    "Patient",
    "generate_study",
    "sample_studies",
]

SAMPLE_SEED = 20240611

_IMPLEMENTATION_VERSION = "DICOMRST_SAMPLE"
_BITS_STORED = 12
_SOP_CLASSES: dict[str, UID] = {"CT": CTImageStorage, "MR": MRImageStorage}


@dataclass(frozen=True)
class Patient:
    """Patient module values; ``character_set`` is SpecificCharacterSet, ``None`` for ASCII."""

    name: str
    patient_id: str
    birth_date: str
    sex: str
    character_set: str | None = None


PATIENTS: tuple[Patient, ...] = (
    Patient("Müller^Jürgen", "PID-1001", "19580214", "M", "ISO_IR 100"),
    # Alphabetic and ideographic component groups, as PS3.5 H.3 shows for Japanese names.
    Patient("Yamada^Tarou=山田^太郎", "PID-1002", "19710923", "M", "ISO_IR 192"),
    Patient("Doe^Jane", "PID-1003", "19850630", "F"),
    Patient("Smith^John^A", "PID-1004", "19490101", "M"),
)

_ASCII_PATIENTS = tuple(p for p in PATIENTS if p.character_set is None)
_PHYSICIANS = ("Welby^Marcus", "Kildare^James", "Quinn^Michaela")
_STUDY_TITLES = {
    "CT": (("CT Thorax", "CHEST"), ("CT Abdomen", "ABDOMEN"), ("CT Head", "HEAD")),
    "MR": (("MR Brain", "HEAD"), ("MR Knee", "KNEE"), ("MR Spine", "SPINE")),
}
_SERIES_TITLES = {
    "CT": ("Axial 5mm", "Axial 1mm", "Soft tissue"),
    "MR": ("T1 SE axial", "T2 TSE axial", "FLAIR axial"),
}


def _uid(rng: random.Random) -> UID:
    return generate_uid(entropy_srcs=[f"{rng.getrandbits(128):032x}"])


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2015, 2024):04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(7, 18):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}"


def _pixel_bytes(rng: random.Random, rows: int, columns: int) -> bytes:
    """A gradient with a bright disc: cheap, deterministic, and visibly different per image."""
    base = rng.randint(0, 400)
    gx, gy = rng.randint(1, 12), rng.randint(1, 12)
    cx, cy = rng.randrange(columns), rng.randrange(rows)
    radius2 = (min(rows, columns) // rng.randint(3, 6)) ** 2
    mask = (1 << _BITS_STORED) - 1
    pixels = array(
        "H",
        (
            (base + x * gx + y * gy + (1500 if (x - cx) ** 2 + (y - cy) ** 2 < radius2 else 0)) & mask
            for y in range(rows)
            for x in range(columns)
        ),
    )
    if sys.byteorder == "big":
        pixels.byteswap()  # OW in Explicit VR Little Endian
    return pixels.tobytes()


def _file_meta(sop_class: UID, sop_uid: UID) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = _IMPLEMENTATION_VERSION
    return meta


def _set_patient(ds: Dataset, patient: Patient) -> None:
    if patient.character_set:
        ds.SpecificCharacterSet = patient.character_set
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex


def _set_image_pixel(ds: Dataset, rng: random.Random, rows: int, columns: int) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = _BITS_STORED
    ds.HighBit = _BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.PixelData = _pixel_bytes(rng, rows, columns)


def _set_modality_specific(ds: Dataset, modality: str) -> None:
    if modality == "CT":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP = "120"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = "500"
        ds.EchoTime = "15"
        ds.EchoTrainLength = "1"
        ds.MagneticFieldStrength = "1.5"
        ds.WindowCenter = "600"
        ds.WindowWidth = "1200"


def generate_study(
    rng: random.Random,
    *,
    patient: Patient | None = None,
    n_series: int,
    instances_per_series: int,
    rows: int = 64,
    columns: int = 64,
    modalities: Sequence[str] | None = None,
    study_date: str | None = None,
) -> list[Dataset]:
    """Return every instance of one synthetic study, series by series.

    ``modalities`` gives each series' modality ("CT" or "MR"; cycled if shorter than
    ``n_series``); without it one modality is drawn for the whole study. ``patient``
    defaults to one of the ASCII patients, ``study_date`` (YYYYMMDD) to a drawn date.
    """
    if n_series < 1 or instances_per_series < 1:
        raise ValueError("a study needs at least one series and one instance per series")
    patient = patient or rng.choice(_ASCII_PATIENTS)
    series_modalities = list(modalities or [rng.choice(tuple(_SOP_CLASSES))])
    unknown = set(series_modalities) - set(_SOP_CLASSES)
    if unknown:
        raise ValueError(f"unsupported modalities {sorted(unknown)}; use CT or MR")

    study = Dataset()
    _set_patient(study, patient)
    study.StudyInstanceUID = _uid(rng)
    study.StudyDate = study_date or _date(rng)
    study.StudyTime = _time(rng)
    title, body_part = rng.choice(_STUDY_TITLES[series_modalities[0]])
    study.StudyDescription = title
    study.AccessionNumber = f"ACC{rng.randint(0, 99_999_999):08d}"
    study.ReferringPhysicianName = rng.choice(_PHYSICIANS)
    study.StudyID = f"{rng.randint(1, 9999)}"
    study.InstitutionName = "dicomrst Sample Hospital"
    frame_of_reference = _uid(rng)

    instances: list[Dataset] = []
    for series_index in range(n_series):
        modality = series_modalities[series_index % len(series_modalities)]
        series = _series_dataset(rng, study, modality, series_index, body_part, frame_of_reference)
        instances.extend(
            _instance(rng, series, modality, number, rows, columns)
            for number in range(1, instances_per_series + 1)
        )
    return instances


def _series_dataset(
    rng: random.Random,
    study: Dataset,
    modality: str,
    series_index: int,
    body_part: str,
    frame_of_reference: UID,
) -> Dataset:
    series = copy.deepcopy(study)
    series.Modality = modality
    series.SeriesInstanceUID = _uid(rng)
    series.SeriesNumber = series_index + 1
    series.SeriesDescription = _SERIES_TITLES[modality][series_index % 3]
    series.SeriesDate = study.StudyDate
    series.SeriesTime = study.StudyTime
    series.BodyPartExamined = body_part
    series.PatientPosition = "HFS"
    series.Manufacturer = "dicomrst"
    series.ManufacturerModelName = f"Synthetic {modality}"
    series.FrameOfReferenceUID = frame_of_reference
    series.PositionReferenceIndicator = ""
    series.SliceThickness = "5"
    series.PixelSpacing = ["0.7", "0.7"]
    series.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    return series


def _instance(
    rng: random.Random, series: Dataset, modality: str, number: int, rows: int, columns: int
) -> Dataset:
    sop_class = _SOP_CLASSES[modality]
    sop_uid = _uid(rng)
    ds = copy.deepcopy(series)
    ds.file_meta = _file_meta(sop_class, sop_uid)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = number
    ds.AcquisitionNumber = 1
    ds.ContentDate = series.StudyDate
    ds.ContentTime = series.StudyTime
    slice_location = f"{(number - 1) * 5.0:.1f}"
    ds.ImagePositionPatient = ["-22.4", "-22.4", slice_location]
    ds.SliceLocation = slice_location
    _set_modality_specific(ds, modality)
    _set_image_pixel(ds, rng, rows, columns)
    return ds


def sample_studies() -> list[list[Dataset]]:
    """The fixed demo content: five studies of four patients, CT, MR and one mixed study."""
    rng = random.Random(SAMPLE_SEED)
    muller, yamada, doe, smith = PATIENTS
    plans: tuple[tuple[Patient, Sequence[str], str, int], ...] = (
        # (patient, series modalities, study date, instances per series)
        (muller, ("CT", "CT"), "20190312", 3),
        (muller, ("MR",), "20210704", 2),
        (yamada, ("MR", "MR", "MR"), "20200115", 2),
        (doe, ("CT", "MR"), "20221130", 2),
        (smith, ("CT",), "20180501", 4),
    )
    return [
        generate_study(
            rng,
            patient=patient,
            n_series=len(modalities),
            instances_per_series=per_series,
            modalities=modalities,
            study_date=date,
        )
        for patient, modalities, date, per_series in plans
    ]
