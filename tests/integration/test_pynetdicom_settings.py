"""pynetdicom set up as the gateway sets it: a C-FIND's identifiers are written to the log only when
DEBUG is on (written line by line at INFO, they cost a quarter of a worker's CPU on a large search)."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import Dataset
from pynetdicom import AE, _config
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from dicomrst.backends.dimse.pynetdicom_settings import configure_pynetdicom
from dicomrst.sample_pacs.scp import serve
from tests.peers import free_port


@pytest.fixture(scope="module")
def pacs_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    server = serve(Path(tmp_path_factory.mktemp("sample-pacs")), aet="SAMPLE", port=port, block=False)
    assert server is not None
    yield port
    server.shutdown()


@pytest.fixture
def restored_settings() -> Iterator[None]:
    saved = {name: getattr(_config, name) for name in
             ("LOG_HANDLER_LEVEL", "LOG_RESPONSE_IDENTIFIERS", "LOG_REQUEST_IDENTIFIERS", "STORE_SEND_CHUNKED_DATASET")}
    yield
    for name, value in saved.items():
        setattr(_config, name, value)


def logged_find(port: int, caplog: pytest.LogCaptureFixture) -> list[str]:
    ae = AE(ae_title="SETTINGS")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = ""
    identifier.PatientName = ""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pynetdicom"):
        association = ae.associate("127.0.0.1", port, ae_title="SAMPLE")
        matches = [match for status, match in association.send_c_find(
            identifier, StudyRootQueryRetrieveInformationModelFind) if match is not None and status.Status == 0xFF00]
        association.release()
    assert matches
    return [record.getMessage() for record in caplog.records]


@pytest.mark.parametrize("debug, written", [(False, False), (True, True)])
def test_find_identifiers_are_logged_only_at_debug(pacs_port: int, caplog: pytest.LogCaptureFixture,
                                                   restored_settings: None, debug: bool, written: bool):
    configure_pynetdicom(debug)
    messages = logged_find(pacs_port, caplog)
    assert ("# Response Identifier" in messages) is written
    assert ("# Request Identifier" in messages) is written
