"""A real browser in front of the gateway: OHIF Viewer 3 served from its own origin, Debian's Chromium
driven headless through chromedriver, the gateway under gunicorn in front of a real Orthanc."""
from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from pydicom import Dataset
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService

from dicomrst.sample_pacs.studies import Patient, generate_study
from tests.browser.fetch_ohif import OHIF_DIST, OHIF_VERSION
from tests.integration.conftest import part10
from tests.peers import Gateway, Orthanc, PeerMissing, gateway_config, receiver_of, start_orthanc

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AET = "ORTHANC"
PATIENT = Patient("Viewer^Valentina", "PID-4711", "19760312", "F")
# Another patient's study, so that the search in the study list has something to leave out.
OTHER_PATIENT = Patient("Bystander^Boris", "PID-4712", "19690101", "M")
SLICES = 30
# A second, shorter series in the patient's study: the study browser then has more than one thumbnail.
MR_SLICES = 3


class OhifServer:
    """OHIF's prebuilt dist/ on a free loopback port, as a static host serves a single-page app: a path
    with no file behind it gets index.html, so the viewer's own routes (/viewer?...) load. app-config.js
    is the test's, never the shipped one."""

    def __init__(self, dist: Path) -> None:
        self.dist = dist
        self.app_config = b""
        handler = partial(_OhifHandler, self, directory=str(dist))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure(self, window_config: str) -> None:
        self.app_config = window_config.encode()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _OhifHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the viewer loads dozens of bundles at start

    def __init__(self, site: OhifServer, *args: Any, **kwargs: Any) -> None:
        self.site = site
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        if path == "/app-config.js":
            self._send(self.site.app_config, "text/javascript")
            return
        if not (self.site.dist / path.lstrip("/")).is_file():
            self.path = "/index.html"
        super().do_GET()

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def ohif_dist() -> Path:
    if not (OHIF_DIST / "index.html").is_file():
        raise PeerMissing(f"OHIF Viewer {OHIF_VERSION} is not in {OHIF_DIST} (python -m tests.browser.fetch_ohif)")
    return OHIF_DIST


# Module-scoped: the peers go as soon as the viewer's tests are done, not at the end of the whole run.
@pytest.fixture(scope="module")
def ohif(ohif_dist: Path) -> Iterator[OhifServer]:
    server = OhifServer(ohif_dist)
    yield server
    server.close()


@dataclass
class ViewerData:
    study: list[Dataset]
    other: list[Dataset]

    @property
    def study_uid(self) -> str:
        return self.study[0].StudyInstanceUID

    @property
    def series_uids(self) -> set[str]:
        return {instance.SeriesInstanceUID for instance in self.study}

    @property
    def series_numbers(self) -> dict[str, int]:
        return {instance.SeriesInstanceUID: int(instance.SeriesNumber) for instance in self.study}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    peer = start_orthanc(tmp_path_factory.mktemp("orthanc"), aet=AET)
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def viewer_data(orthanc: Orthanc) -> ViewerData:
    rng = random.Random(4711)
    study = generate_study(rng, patient=PATIENT, n_series=2, instances_per_series=SLICES, modalities=("CT", "MR"),
                           rows=128, columns=128)
    # The generator gives every series as many instances; the MR series needs only a few.
    study = [instance for instance in study if instance.Modality == "CT" or instance.InstanceNumber <= MR_SLICES]
    other = generate_study(rng, patient=OTHER_PATIENT, n_series=1, instances_per_series=2, modalities=("MR",),
                           rows=32, columns=32)
    for dataset in study + other:
        orthanc.upload(part10(dataset))
    return ViewerData(study, other)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc, viewer_data: ViewerData,
            ohif: OhifServer) -> Iterator[Gateway]:
    config = gateway_config(
        # The cache is what makes a viewer's metadata request and its frame requests one retrieval per
        # series; it is asked for here so the test does not depend on the default.
        [{"aet": AET, "host": "127.0.0.1", "port": orthanc.dicom_port, "cache": {"enabled": True}}],
        receiver_aet="DICOMRST-OHIF")
    # The viewer's origin, and no other: the browser calls the gateway across origins as in production.
    config["server"]["http"]["allowed-origins"] = [ohif.origin]
    # A cache of its own: the default folder is shared by every gateway of this user and could answer
    # from an earlier run without asking Orthanc.
    config["server"]["cache"] = {"path": str(tmp_path_factory.mktemp("ohif-cache"))}
    orthanc.add_modality(*receiver_of(config))
    process = Gateway(config, tmp_path_factory.mktemp("ohif-gateway"))
    process.start()
    yield process
    process.stop()


# Where the viewer's thumbnails come from: drawn from a frame the viewer retrieves itself, or the gateway's
# /thumbnail resources as OHIF's own app-config.js asks for them. That file pairs thumbnailRendering
# 'thumbnail' with thumbnailRequestStrategy 'fetch' (Accept: image/jpeg); OHIF's fallback strategy
# asks instead with Accept: multipart/related; type="application/octet-stream", which the gateway refuses.
THUMBNAILS_FROM_FRAMES: Mapping[str, str] = {"thumbnailRendering": "wadors"}
THUMBNAILS_RENDERED: Mapping[str, str] = {"thumbnailRendering": "thumbnail", "thumbnailRequestStrategy": "fetch"}


def window_config(gateway: Gateway, thumbnails: Mapping[str, str] = THUMBNAILS_FROM_FRAMES) -> str:
    root = f"{gateway.url}/aets/{AET}"
    config = {
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        # Its banner lies over the lower part of the viewport until a click confirms it.
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": "dicomrst",
        "dataSources": [{
            "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
            "sourceName": "dicomrst",
            "configuration": {
                "friendlyName": "dicomrst",
                "name": "dicomrst",
                "qidoRoot": root,
                "wadoRoot": root,
                "wadoUriRoot": root,
                "qidoSupportsIncludeField": True,
                "imageRendering": "wadors",
                **thumbnails,
                "enableStudyLazyLoad": True,
                "supportsFuzzyMatching": False,
                "supportsWildcard": True,
                "bulkDataURI": {"enabled": True},
                "omitQuotationForMultipartRequest": True,
            },
        }],
    }
    # The first-run tour covers the viewport and swallows wheel events until dismissed.
    tours_off = "window.config.customizationService = [{'ohif.tours': {$set: []}}];\n"
    return f"window.config = {json.dumps(config, indent=2)};\n{tours_off}"


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(binary).is_file():
            raise PeerMissing(f"{binary} is missing (apt-get install {package})")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture(scope="module")
def browser(chromium: tuple[str, str]) -> Iterator[webdriver.Chrome]:
    binary, driver = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        # No GPU here: WebGL from SwiftShader, so the viewer takes its usual GPU path rather than its
        # CPU fallback.
        "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader",
        # Nothing but loopback is reachable; Chromium's own calls home would only add refused connections.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    session = webdriver.Chrome(options=options, service=ChromeService(driver))
    yield session
    session.quit()
