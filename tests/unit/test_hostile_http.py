"""Hostile requests never produce a 500: arbitrary Accept headers, query strings, content types and
bodies against every kind of route, over a scripted backend."""
from __future__ import annotations

from contextlib import contextmanager
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomrst.backends.base import StoreOutcome, StoreSession
from tests.unit.test_web import ScriptedBackend, client_for, study


class AcceptingSession(StoreSession):
    def store(self, instance):
        return StoreOutcome(True)


class HostileBackend(ScriptedBackend):
    def retrieve(self, selection):
        return iter(())

    @contextmanager
    def store_session(self, like=()):
        yield AcceptingSession()


CLIENT = client_for(HostileBackend([study(1), study(2)]))
PATHS = ["/aets/PACS/studies", "/aets/PACS/series", "/aets/PACS/instances", "/aets/PACS/studies/1.2.3/series",
         "/aets/PACS/studies/1.2.3", "/aets/PACS/studies/1.2.3/metadata",
         "/aets/PACS/studies/1.2/series/1.3/instances/1.4/frames/1", "/aets"]
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), header_text, st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=5))
def test_gets_never_fail_with_500(path: str, accept: str, params: list[tuple[str, str]]):
    query = "&".join(f"{quote(key)}={quote(value)}" for key, value in params)
    response = CLIENT.get(f"{path}?{query}", headers={"Accept": accept})
    assert response.status_code < 500, (path, accept, params, response.get_data(as_text=True))
    response.get_data()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header_text, st.binary(max_size=600), st.sampled_from(["/aets/PACS/studies", "/aets/PACS/studies/1.2.3"]))
def test_stow_bodies_never_fail_with_500(content_type: str, body: bytes, path: str):
    response = CLIENT.post(path, data=body, headers={"Content-Type": content_type})
    assert response.status_code < 500, (content_type, body[:80], response.get_data(as_text=True))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=70))
def test_multipart_with_arbitrary_parts_never_fails_with_500(payload: bytes, boundary: str):
    body = b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + payload + \
        b"\r\n--" + boundary.encode() + b"--\r\n"
    response = CLIENT.post("/aets/PACS/studies", data=body,
                           headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary="{boundary}"'})
    assert response.status_code < 500, response.get_data(as_text=True)
