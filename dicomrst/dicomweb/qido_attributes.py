"""Attribute tables for QIDO-RS searches (PS3.18 10.6.3.3): what each level returns.

Keywords only; tags and VRs come from pydicom's data dictionary.
"""

from __future__ import annotations

# PS3.18 Table 10.6.3-3 (Study). SpecificCharacterSet is handled by the query builder and
# RetrieveURL is built by the gateway, so neither is a C-FIND return key here.
STUDY_DEFAULTS: tuple[str, ...] = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "TimezoneOffsetFromUTC",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)

# PS3.18 Table 10.6.3-4 (Series). RequestAttributesSequence is added separately because it
# is a sequence whose single item carries its own return keys.
SERIES_DEFAULTS: tuple[str, ...] = (
    "Modality",
    "TimezoneOffsetFromUTC",
    "SeriesDescription",
    "SeriesInstanceUID",
    "SeriesNumber",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
)
SERIES_DEFAULT_SEQUENCES: dict[str, tuple[str, ...]] = {
    "RequestAttributesSequence": ("ScheduledProcedureStepID", "RequestedProcedureID"),
}

# PS3.18 Table 10.6.3-5 (Instance).
INSTANCE_DEFAULTS: tuple[str, ...] = (
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "TimezoneOffsetFromUTC",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
)

# `includefield=all`: a C-FIND SCP only returns keys it is asked for, so "all" means this
# documented list of attributes commonly supported by PACS at each level, in addition to
# the defaults. Only non-sequence attributes, so every SCP can answer them.
STUDY_ALL: tuple[str, ...] = (
    "StudyDescription",
    "SOPClassesInStudy",
    "NameOfPhysiciansReadingStudy",
    "AdmittingDiagnosesDescription",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientNames",
    "IssuerOfPatientID",
    "EthnicGroup",
    "Occupation",
    "AdditionalPatientHistory",
    "PatientComments",
)

SERIES_ALL: tuple[str, ...] = (
    "SeriesDate",
    "SeriesTime",
    "BodyPartExamined",
    "Laterality",
    "ProtocolName",
    "PerformingPhysicianName",
    "OperatorsName",
    "PerformedProcedureStepID",
    "PerformedProcedureStepDescription",
    "Manufacturer",
    "ManufacturerModelName",
    "InstitutionName",
    "InstitutionalDepartmentName",
    "StationName",
    "FrameOfReferenceUID",
)

INSTANCE_ALL: tuple[str, ...] = (
    "ImageType",
    "ContentDate",
    "ContentTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "AcquisitionDateTime",
    "AcquisitionNumber",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "ImageComments",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "SliceLocation",
    "SliceThickness",
    "PixelSpacing",
    "WindowCenter",
    "WindowWidth",
)
