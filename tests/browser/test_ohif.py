"""OHIF Viewer 3 in headless Chromium against the gateway, as a person uses it: the study list, a search by
patient name, the study opened in the viewer, its first image drawn, a thumbnail per series, a scroll to
the last slice. Then what the browser saw (no failed request to the gateway, no console error) and what
the gateway did (one retrieval from the PACS per series the viewer opened). Once with the thumbnails drawn
by the viewer from frames, once with OHIF's default, the gateway's /thumbnail resources."""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

import requests
from prometheus_client.parser import text_string_to_metric_families
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver import Chrome
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser.conftest import (
    AET,
    PATIENT,
    SLICES,
    THUMBNAILS_FROM_FRAMES,
    THUMBNAILS_RENDERED,
    OhifServer,
    ViewerData,
    window_config,
)
from tests.peers import Gateway

T = TypeVar("T")
Condition = Callable[[Chrome], T | None]

PATIENT_FILTER = 'tr[data-filter-row="true"] > td:first-child input'
STUDY_ROWS = "tr[aria-selected]"
VIEWPORT_CANVAS = '[data-cy="viewport-pane"] canvas'
SLICE_INDICATOR = '[data-cy="viewport-overlay-bottom-right"] [title="Instance Number"]'
# The prefix takes in OHIF's no-image kind too (a series it shows no picture for): such a series then
# counts as a thumbnail not shown rather than as none at all.
THUMBNAIL = '[data-cy^="study-browser-thumbnail"]'
STUDY_BROWSER_THUMBNAILS = f'[data-cy="studyBrowser-panel"] {THUMBNAIL}'
# The study list's preview of the selected study names each thumbnail after its series:
# id="thumbnail-series-<Series Instance UID>".
PREVIEW_THUMBNAILS = f'{THUMBNAIL}[id^="thumbnail-series-"]'
THUMBNAILS = """
return [...document.querySelectorAll(arguments[0])].map(thumbnail => {
  const image = thumbnail.querySelector('img');
  return {
    id: thumbnail.id,
    series: thumbnail.dataset.series,
    shown: Boolean(image && image.complete && image.naturalWidth > 0 && image.naturalHeight > 0),
    size: image ? [image.naturalWidth, image.naturalHeight] : null,
  };
});
"""
# Copied onto a 2D canvas of its own, the viewport can be read back whatever context it draws with: how
# many colours it shows (counted up to a cap) and a digest that changes when the image does.
CANVAS_PIXELS = """
const source = arguments[0];
const copy = document.createElement('canvas');
copy.width = source.width;
copy.height = source.height;
const context = copy.getContext('2d');
context.drawImage(source, 0, 0);
const data = context.getImageData(0, 0, copy.width, copy.height).data;
const colours = new Set();
let digest = 0;
for (let i = 0; i < data.length; i += 4) {
  const colour = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
  if (colours.size < 256) colours.add(colour);
  digest = (Math.imul(digest, 31) + colour) | 0;
}
return [colours.size, digest];
"""


@dataclass
class Request:
    method: str
    url: str
    accept: str | None = None  # as the page set it; None when left to the browser
    status: int | None = None
    content_type: str | None = None
    failure: str | None = None
    finished: bool = False

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def media_type(self) -> str | None:
        return self.content_type.split(";")[0].strip().lower() if self.content_type is not None else None

    def __str__(self) -> str:
        outcome = self.failure if self.failure is not None else f"{self.status} {self.content_type}"
        return f"{self.method} {self.url} (Accept: {self.accept}) -> {outcome}"


def _header(headers: dict[str, str], name: str) -> str | None:
    # The DevTools protocol keeps header names as they were written.
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)


@dataclass
class NetworkLog:
    """The browser's own record of every request to the gateway, from Chromium's performance log (the
    DevTools Network domain): what was asked, the status, and whether the request ended or failed."""

    browser: Chrome
    origin: str
    requests: dict[str, Request] = field(default_factory=dict)

    def drain(self) -> None:
        for entry in self.browser.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message["method"], message.get("params", {})
            if method == "Network.requestWillBeSent":
                request = params["request"]
                if request["url"].startswith(self.origin + "/"):
                    self.requests[params["requestId"]] = Request(request["method"], request["url"],
                                                                 _header(request["headers"], "Accept"))
                continue
            seen = self.requests.get(params.get("requestId", ""))
            if seen is None:
                continue
            if method == "Network.responseReceived":
                seen.status = params["response"]["status"]
                seen.content_type = _header(params["response"]["headers"], "Content-Type")
            elif method == "Network.loadingFinished":
                seen.finished = True
            elif method == "Network.loadingFailed":
                seen.finished = True
                seen.failure = " ".join(str(params[key]) for key in ("errorText", "blockedReason", "corsErrorStatus")
                                        if params.get(key))

    def finished_search(self, key: str, containing: str) -> Condition[Request]:
        """A QIDO-RS search for studies whose ``key`` matches something with ``containing`` in it, once its
        response is in."""
        def search(_: Chrome) -> Request | None:
            self.drain()
            return next((request for request in self.requests.values() if request.finished
                         and request.path.endswith("/studies")
                         and containing in parse_qs(urlsplit(request.url).query).get(key, [""])[0]), None)
        return search

    @property
    def pending(self) -> list[Request]:
        return [request for request in self.requests.values() if not request.finished]

    @property
    def failed(self) -> list[Request]:
        return [request for request in self.requests.values()
                if request.failure is not None or (request.status is not None and request.status >= 400)]

    def wait_idle(self, timeout: float, quiet: float = 1.0) -> None:
        """Until every request to the gateway has ended and none has started for ``quiet`` seconds: the
        viewer goes on prefetching after it has drawn what it shows."""
        deadline = time.monotonic() + timeout
        count, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            self.drain()
            if self.pending or len(self.requests) != count:
                count, since = len(self.requests), time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)
        raise AssertionError("requests to the gateway still under way: " + "; ".join(map(str, self.pending)))


def severe_console_messages(browser: Chrome) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


@dataclass
class Page:
    browser: Chrome
    network: NetworkLog

    def wait_for(self, what: str, condition: Condition[T], timeout: float = 30) -> T:
        """``condition``'s first truthy answer. Past ``timeout``, the failure says what the browser saw go
        wrong meanwhile: a request the gateway refused explains more than "the list stayed empty"; and
        what the condition saw last, if it keeps that (``last``)."""
        try:
            found = WebDriverWait(self.browser, timeout, ignored_exceptions=[StaleElementReferenceException]).until(
                condition)
        except TimeoutException:
            self.network.drain()
            seen = [f"last seen: {last}"] if (last := getattr(condition, "last", None)) is not None else []
            seen += [f"request failed: {request}" for request in self.network.failed]
            seen += [f"console: {message}" for message in severe_console_messages(self.browser)]
            raise AssertionError("\n".join([f"no {what} within {timeout:g} s", *seen])) from None
        self.network.drain()  # Chromium buffers the performance log until it is read
        return cast(T, found)  # until() returns only a truthy answer


def fresh_page(browser: Chrome, gateway: Gateway) -> Page:
    """The module's tests share one browser: what an earlier test left in its logs and its HTTP cache
    would be taken for this test's requests, or answer them without the gateway."""
    browser.get("about:blank")
    browser.get_log("performance")
    browser.get_log("browser")
    browser.execute_cdp_cmd("Network.clearBrowserCache", {})
    return Page(browser, NetworkLog(browser, gateway.url))


def visible(selector: str) -> Condition[WebElement]:
    def first(browser: Chrome) -> WebElement | None:
        return next((element for element in browser.find_elements(By.CSS_SELECTOR, selector) if element.is_displayed()),
                    None)
    return first


def slice_position(browser: Chrome) -> tuple[int, int] | None:
    """The viewport's "I: 12 (3/30)": which slice of how many is shown."""
    indicators = browser.find_elements(By.CSS_SELECTOR, SLICE_INDICATOR)
    found = re.search(r"\((\d+)/(\d+)\)", indicators[0].text) if indicators else None
    return (int(found[1]), int(found[2])) if found else None


def showing_slice(index: int) -> Condition[bool]:
    return lambda browser: slice_position(browser) == (index, SLICES)


def drawn(unlike: int | None = None) -> Condition[int]:
    """The digest of the viewport's image once it has more than one colour (and differs from ``unlike``)."""
    def digest(browser: Chrome) -> int | None:
        canvas = browser.find_element(By.CSS_SELECTOR, VIEWPORT_CANVAS)
        colours, value = browser.execute_script(CANVAS_PIXELS, canvas)
        return value if colours > 1 and value != unlike else None
    return digest


@dataclass
class ThumbnailsShown:
    """Every thumbnail under ``selector`` with its image loaded and of some size, once there are ``count``
    of them: OHIF shows a thumbnail as an <img> (a data: URL drawn from a frame, or a blob: URL of what
    the gateway rendered), and a placeholder in its place while it has none."""

    selector: str
    count: int
    last: list[dict[str, Any]] | None = None

    def __call__(self, browser: Chrome) -> list[dict[str, Any]] | None:
        self.last = browser.execute_script(THUMBNAILS, self.selector)
        shown = len(self.last) == self.count and all(thumbnail["shown"] for thumbnail in self.last)
        return self.last if shown else None


def thumbnail_requests(network: NetworkLog) -> list[Request]:
    return [request for request in network.requests.values() if request.path.endswith("/thumbnail")]


def retrievals(gateway: Gateway) -> float:
    """C-MOVEs and C-GETs the gateway has sent to the PACS, whatever their outcome."""
    text = requests.get(f"{gateway.url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "dicomrst_dimse_operations_total" and sample.labels.get("aet") == AET
               and sample.labels.get("operation") in ("C-MOVE", "C-GET"))


def test_ohif_searches_opens_and_scrolls_a_study(browser: Chrome, ohif: OhifServer, gateway: Gateway,
                                                 viewer_data: ViewerData) -> None:
    ohif.configure(window_config(gateway, THUMBNAILS_FROM_FRAMES))
    page = fresh_page(browser, gateway)
    retrievals_before = retrievals(gateway)
    family_name, given_name = PATIENT.name.split("^")[:2]

    browser.get(f"{ohif.origin}/")
    patient_filter = page.wait_for("patient name filter in the study list", visible(PATIENT_FILTER))
    # Both studies are listed before the search, so the search has something to leave out.
    page.wait_for("two studies in the list", lambda b: len(b.find_elements(By.CSS_SELECTOR, STUDY_ROWS)) == 2)
    patient_filter.send_keys(given_name)
    # The list narrows at once on the rows it holds; the search the gateway answers follows a moment later,
    # and leaving the page before then would cancel it.
    page.wait_for("search by patient name sent to the gateway", page.network.finished_search("PatientName", given_name))

    def only_the_patient(browser: Chrome) -> WebElement | None:
        rows = browser.find_elements(By.CSS_SELECTOR, STUDY_ROWS)
        return rows[0] if len(rows) == 1 and f"{family_name}, {given_name}" in rows[0].text else None

    page.wait_for(f"list of {given_name}'s study alone after the search", only_the_patient).click()
    page.wait_for("Basic Viewer button", visible('button[title="Basic Viewer"]')).click()
    page.wait_for("viewer route", lambda b: f"StudyInstanceUIDs={viewer_data.study_uid}" in b.current_url)

    page.wait_for("first slice", showing_slice(1), timeout=60)
    first = page.wait_for("first image drawn (more than one colour on the canvas)", drawn(), timeout=60)
    assert not browser.find_elements(By.CSS_SELECTOR, ".shepherd-element"), "the first-run tour is showing"
    thumbnails = page.wait_for("a thumbnail shown per series in the study browser",
                               ThumbnailsShown(STUDY_BROWSER_THUMBNAILS, len(viewer_data.series_uids)))
    assert {thumbnail["series"] for thumbnail in thumbnails} == {str(n) for n in viewer_data.series_numbers.values()}

    canvas = browser.find_element(By.CSS_SELECTOR, VIEWPORT_CANVAS)
    for index in range(2, SLICES + 1):
        # One wheel notch is one slice; each is waited for, so none is lost while the viewer catches up.
        ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, 100).perform()
        page.wait_for(f"slice {index} after a wheel notch", showing_slice(index))
    page.wait_for("last image drawn, unlike the first", drawn(unlike=first))

    network = page.network
    network.wait_idle(timeout=60)
    assert not network.failed, "requests to the gateway failed:\n" + "\n".join(map(str, network.failed))
    assert not (errors := severe_console_messages(browser)), "console errors:\n" + "\n".join(errors)
    opened_series = {found[1] for request in network.requests.values()
                     if (found := re.search(r"/series/([^/]+)/(metadata|instances/)", request.path))}
    assert opened_series == viewer_data.series_uids
    frames = [request for request in network.requests.values() if "/frames/" in request.path]
    assert len(frames) >= SLICES, "a frame request per slice"
    assert not (rendered := thumbnail_requests(network)), "thumbnails asked of the gateway:\n" + "\n".join(map(str, rendered))
    moved = retrievals(gateway) - retrievals_before
    assert moved == len(opened_series), f"{moved:g} retrievals from {AET} (C-MOVE + C-GET) for {len(opened_series)} series"


def test_ohif_shows_the_gateways_thumbnails(browser: Chrome, ohif: OhifServer, gateway: Gateway,
                                            viewer_data: ViewerData) -> None:
    ohif.configure(window_config(gateway, THUMBNAILS_RENDERED))
    page = fresh_page(browser, gateway)
    series_numbers = viewer_data.series_numbers
    family_name, given_name = PATIENT.name.split("^")[:2]

    browser.get(f"{ohif.origin}/")

    def the_patients_row(browser: Chrome) -> WebElement | None:
        return next((row for row in browser.find_elements(By.CSS_SELECTOR, STUDY_ROWS)
                     if f"{family_name}, {given_name}" in row.text), None)

    page.wait_for(f"{given_name}'s study in the list", the_patients_row).click()
    # The selected study's series, beside the list: each with the gateway's thumbnail of that series.
    preview = page.wait_for("a thumbnail shown per series in the study list's preview",
                            ThumbnailsShown(PREVIEW_THUMBNAILS, len(series_numbers)))
    assert {thumbnail["id"].removeprefix("thumbnail-series-") for thumbnail in preview} == set(series_numbers)

    page.wait_for("Basic Viewer button", visible('button[title="Basic Viewer"]')).click()
    page.wait_for("viewer route", lambda b: f"StudyInstanceUIDs={viewer_data.study_uid}" in b.current_url)
    page.wait_for("first image drawn (more than one colour on the canvas)", drawn(), timeout=60)
    # In the viewer, each series' thumbnail is that of one of its instances.
    shown = page.wait_for("a thumbnail shown per series in the study browser",
                          ThumbnailsShown(STUDY_BROWSER_THUMBNAILS, len(series_numbers)))
    assert {thumbnail["series"] for thumbnail in shown} == {str(number) for number in series_numbers.values()}

    network = page.network
    network.wait_idle(timeout=60)
    assert not network.failed, "requests to the gateway failed:\n" + "\n".join(map(str, network.failed))
    assert not (errors := severe_console_messages(browser)), "console errors:\n" + "\n".join(errors)
    thumbnails = thumbnail_requests(network)
    listing = "\n".join(map(str, thumbnails))
    assert all(request.status == 200 and request.media_type == "image/jpeg" for request in thumbnails), listing
    instances = {(instance.SeriesInstanceUID, instance.SOPInstanceUID) for instance in viewer_data.study}
    thumbnail_path = re.compile(
        rf"/aets/{AET}/studies/{re.escape(viewer_data.study_uid)}/series/([^/]+)(?:/instances/([^/]+))?/thumbnail")
    asked = set()
    for request in thumbnails:
        found = thumbnail_path.fullmatch(request.path)
        assert found and (found[2] is None or (found[1], found[2]) in instances), f"not of the study's series:\n{request}"
        asked.add((found[1], "series" if found[2] is None else "instance"))
    assert asked == {(uid, level) for uid in series_numbers for level in ("series", "instance")}, listing
