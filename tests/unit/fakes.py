"""Fakes for the web layer's unit tests: a scripted backend and an app built around it (the real
backends are tested against real peers in tests/integration)."""
from __future__ import annotations

from collections.abc import Iterator

from pydicom import Dataset

from dicomrst import create_app
from dicomrst.backends.base import Backend, Health, SearchNotes, paged
from dicomrst.config import parse_config
from dicomrst.dicomweb.query import QidoQuery


def study(number: int) -> Dataset:
    match = Dataset()
    match.StudyInstanceUID = f"1.2.3.{number}"
    match.PatientName = f"Patient^{number}"
    return match


class ScriptedBackend(Backend):
    """Answers searches with the matches it was given (then, if asked, fails); offers nothing else."""

    kind = "SCRIPTED"

    def __init__(self, matches: list[Dataset], error_after: Exception | None = None) -> None:
        self.aet = "PACS"
        self.matches = matches
        self.error_after = error_after
        self.closed = False
        self.finished = False  # what a search hands to SearchNotes.finish has run
        self.queries: list[QidoQuery] = []

    def health(self) -> Health:
        return Health(True, "fine")

    def search(self, query: QidoQuery, notes: SearchNotes) -> Iterator[Dataset]:
        self.queries.append(query)
        return paged(self._matches(notes), query)

    def _matches(self, notes: SearchNotes) -> Iterator[Dataset]:
        try:
            yield from self.matches
            if self.error_after is not None:
                raise self.error_after
            notes.finish(self._finish)
        finally:
            self.closed = True

    def _finish(self) -> None:
        self.finished = True



def client_for(backend: Backend, **http):
    config = parse_config({"server": {"http": http}, "aets": [{"aet": "PACS", "host": "h", "port": 1}]})
    return create_app(config, backends={"PACS": backend}).test_client()
