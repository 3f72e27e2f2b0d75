"""Rendered resources, thumbnails and WADO-URI through the gateway in front of Orthanc: the images are
those the rendering module makes of the original instance (whose numbers are checked against numpy
references in tests/unit/test_rendering.py), a study's thumbnail retrieves one instance and no more,
renderings are kept, and what is not offered is refused clearly."""
from __future__ import annotations

import random
import time
from io import BytesIO
from pathlib import Path

import numpy
import pytest
import requests
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file

from dicomrst.dicomweb.rendered_params import parse_rendered_parameters, thumbnail_parameters
from dicomrst.dicomweb.rendering import render
from dicomrst.sample_pacs.studies import Patient, generate_study
from tests.integration.conftest import KnownData, part10
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, Orthanc, gateway_config, receiver_of, wait_until


def base(gateway: Gateway, dataset: Dataset, aet: str = "ORTHANC") -> str:
    return (f"{gateway.url}/aets/{aet}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
            f"/instances/{dataset.SOPInstanceUID}")


def test_a_rendered_ct_is_the_windowed_original(gateway: Gateway, known_data: KnownData):
    ct = next(d for d in known_data.real_world if d.Modality == "CT")
    response = requests.get(f"{base(gateway, ct)}/rendered", params={"window": "40,400"},
                            headers={"Accept": "image/png"}, timeout=60)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    expected = render(dcmread(get_testdata_file("CT_small.dcm")), 0,
                      parse_rendered_parameters([("window", "40,400")]), "image/png")
    assert numpy.array_equal(numpy.asarray(Image.open(BytesIO(response.content))),
                             numpy.asarray(Image.open(BytesIO(expected))))
    assert response.headers["Cache-Control"].startswith("private")


def test_rendered_defaults_to_jpeg_and_frames_of_a_multi_frame_instance(gateway: Gateway, known_data: KnownData):
    dose = next(d for d in known_data.real_world if d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.2")
    jpeg = requests.get(f"{base(gateway, dose)}/frames/3/rendered", timeout=60)
    assert jpeg.status_code == 200 and jpeg.headers["Content-Type"] == "image/jpeg"
    assert Image.open(BytesIO(jpeg.content)).size == (dose.Columns, dose.Rows)
    several = requests.get(f"{base(gateway, dose)}/frames/1,2,3/rendered", headers={"Accept": "image/png"}, timeout=60)
    assert several.status_code == 200
    parts = parse_multipart(several.headers["Content-Type"], several.content)
    assert len(parts) == 3 and all(Image.open(BytesIO(body)).format == "PNG" for _, body in parts)
    gif = requests.get(f"{base(gateway, dose)}/rendered", headers={"Accept": "image/gif"}, timeout=60)
    assert gif.status_code == 200 and Image.open(BytesIO(gif.content)).n_frames > 1


def test_a_rendered_series_is_one_image_per_instance(gateway: Gateway, known_data: KnownData):
    series = [d for d in known_data.study(0) if d.SeriesInstanceUID == known_data.study(0)[0].SeriesInstanceUID]
    first = series[0]
    response = requests.get(f"{gateway.url}/aets/ORTHANC/studies/{first.StudyInstanceUID}/series/"
                            f"{first.SeriesInstanceUID}/rendered", timeout=60)
    assert response.status_code == 200
    assert len(parse_multipart(response.headers["Content-Type"], response.content)) == len(series)


def test_bad_rendering_parameters_are_400_and_unacceptable_types_406(gateway: Gateway, known_data: KnownData):
    ct = next(d for d in known_data.real_world if d.Modality == "CT")
    for params in ({"window": "40"}, {"viewport": "0,10"}, {"quality": "101"}, {"colour": "red"}):
        response = requests.get(f"{base(gateway, ct)}/rendered", params=params, timeout=60)
        assert response.status_code == 400, params
        assert next(iter(params)) in response.json()["error"]
    assert requests.get(f"{base(gateway, ct)}/rendered", headers={"Accept": "image/tiff"}, timeout=60).status_code == 406


@pytest.fixture(scope="module")
def thumbnails(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc):
    study = generate_study(random.Random(2323), patient=Patient("Thumb^Tina", "PID-2323", "19800101", "F"),
                           n_series=2, instances_per_series=5, rows=256, columns=256)
    for dataset in study:
        orthanc.upload(part10(dataset))
    config = gateway_config([{"aet": "THUMBS", "host": "127.0.0.1", "port": orthanc.dicom_port,
                              "wado-rs": {"calling-aets": [orthanc.aet]}}], receiver_aet="DICOMRST-THUMB")
    orthanc.add_modality(*receiver_of(config))
    gateway = Gateway(config, Path(tmp_path_factory.mktemp("thumbs")))
    gateway.start()
    yield gateway, study
    gateway.stop()
    orthanc.delete_study(study[0].StudyInstanceUID)


def test_a_study_thumbnail_retrieves_one_instance_of_its_first_series_and_is_kept(thumbnails):
    gateway, study = thumbnails
    first_series = min({(int(d.SeriesNumber), d.SeriesInstanceUID) for d in study})[1]
    in_order = sorted((d for d in study if d.SeriesInstanceUID == first_series), key=lambda d: int(d.InstanceNumber))
    middle = in_order[len(in_order) // 2]
    url = f"{gateway.url}/aets/THUMBS/studies/{study[0].StudyInstanceUID}/thumbnail"
    response = requests.get(url, timeout=60)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
    image = Image.open(BytesIO(response.content))
    assert max(image.size) <= 128
    expected = Image.open(BytesIO(render(middle, 0, thumbnail_parameters(parse_rendered_parameters([])), "image/png")))
    assert image.size == expected.size
    difference = numpy.abs(numpy.asarray(image.convert("L"), dtype=int) - numpy.asarray(expected.convert("L"), dtype=int))
    assert difference.mean() < 3  # JPEG of the middle instance
    # The response may end as the instance lands, a moment before the C-MOVE is counted.
    wait_until(lambda: gateway.metric("dicomrst_dimse_operations_total", operation="C-MOVE") >= 1, 10, "the C-MOVE")
    time.sleep(0.5)
    assert gateway.metric("dicomrst_dimse_operations_total", operation="C-MOVE") == 1
    assert gateway.metric("dicomrst_retrieved_bytes_total") < 1.5 * len(part10(middle))
    finds = gateway.metric("dicomrst_dimse_operations_total", operation="C-FIND")
    again = requests.get(url, timeout=60)
    assert again.content == response.content
    # Warm: the representative instance and its rendering are remembered; no DIMSE at all.
    assert gateway.metric("dicomrst_dimse_operations_total", operation="C-MOVE") == 1
    assert gateway.metric("dicomrst_dimse_operations_total", operation="C-FIND") == finds


def test_wado_uri(gateway: Gateway, known_data: KnownData):
    ct = next(d for d in known_data.real_world if d.Modality == "CT")
    wado = f"{gateway.url}/aets/ORTHANC/wado"
    uids = {"requestType": "WADO", "studyUID": ct.StudyInstanceUID, "seriesUID": ct.SeriesInstanceUID,
            "objectUID": ct.SOPInstanceUID}
    jpeg = requests.get(wado, params=uids, timeout=60)
    assert jpeg.status_code == 200 and jpeg.headers["Content-Type"] == "image/jpeg"
    assert Image.open(BytesIO(jpeg.content)).size == (ct.Columns, ct.Rows)
    small = requests.get(wado, params={**uids, "rows": "64", "columns": "64", "windowCenter": "40",
                                       "windowWidth": "400", "contentType": "image/png"}, timeout=60)
    assert small.status_code == 200 and max(Image.open(BytesIO(small.content)).size) == 64
    dicom = requests.get(wado, params={**uids, "contentType": "application/dicom"}, timeout=60)
    assert dicom.status_code == 200
    assert dcmread(BytesIO(dicom.content)).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    as_stored = requests.get(wado, params={**uids, "contentType": "application/dicom", "transferSyntax": "*"}, timeout=60)
    assert dcmread(BytesIO(as_stored.content)).SOPInstanceUID == ct.SOPInstanceUID
    for params, status in (({**uids, "anonymize": "yes"}, 400), ({**uids, "requestType": "WADOX"}, 400),
                           ({k: v for k, v in uids.items() if k != "objectUID"}, 400),
                           ({**uids, "windowCenter": "40"}, 400), ({**uids, "contentType": "text/html"}, 406)):
        response = requests.get(wado, params=params, timeout=60)
        assert response.status_code == status, (params, response.text)
        assert response.json()["error"]


def test_the_accept_query_parameter_chooses_the_rendered_type(gateway: Gateway, known_data: KnownData):
    # What OHIF sends for thumbnails with its bulkDataRetrieve strategy: the header asks for bulk data.
    ct = next(d for d in known_data.real_world if d.Modality == "CT")
    response = requests.get(f"{base(gateway, ct)}/thumbnail", params={"accept": "image/png"}, timeout=60,
                            headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
