"""check-config reports every problem at once; AE titles must work as URL path segments; a near miss
of a top-level key is an error; YAML syntax errors name the file once, with line and column."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dicomrst.config import ConfigError, config_problem_lines, load_config, parse_config


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_load(text))
    return [str(problem) for problem in caught.value.problems]


def test_every_problem_is_reported_not_the_first_only():
    problems = problems_of(
        "server: {http: {port: x}}\n"
        "aets:\n"
        "  - {aet: A, host: h}\n"
        "  - {aet: B, host: h, port: 99999, pool: {size: 0}}\n"
    )
    assert problems == [
        "server.http.port: expected a whole number, got 'x'",
        "aets[0].port: is required",
        "aets[1].pool.size: must be at least 1, got 0",
        "aets[1].port: must be between 1 and 65535, got 99999",
    ]


@pytest.mark.parametrize("aet", ["A B/C", "A/B", "PACS?", "50%", "A#1", "A B"])
def test_an_aet_that_cannot_be_a_url_path_segment_is_an_error(aet: str):
    assert problems_of(yaml.safe_dump({"aets": [{"aet": aet, "host": "h", "port": 1}]})) == [
        f"aets[0].aet: {aet!r} cannot be a URL path segment (/aets/{{aet}}): use letters, digits and - . _ ~"
    ]


@pytest.mark.parametrize("aet", ["PACS-1", "ORTHANC", "my.pacs_2", "A:B@C"])
def test_aets_that_are_path_segments_are_accepted(aet: str):
    assert parse_config({"aets": [{"aet": aet, "host": "h", "port": 1}]}).aets[0].aet == aet


@pytest.mark.parametrize("aet", ["SEVENTEEN-CHARS-X", "BACK\\SLASH", "TAB\tHERE"])
def test_an_invalid_ae_title_is_an_error(aet: str):
    assert "is not a valid AE title" in problems_of(yaml.safe_dump({"aets": [{"aet": aet, "host": "h", "port": 1}]}))[0]


def test_a_receiver_aet_need_not_be_a_path_segment():
    config = parse_config({"server": {"dimse": [{"aet": "MY RECEIVER", "port": 7001}]}})
    assert config.server.dimse[0].aet == "MY RECEIVER"


@pytest.mark.parametrize("key, meant", [("aet", "aets"), ("servers", "server"), ("telemetri", "telemetry")])
def test_a_near_miss_of_a_top_level_key_is_an_error(key: str, meant: str):
    assert problems_of(f"{key}: []") == [f"{key}: unknown key; did you mean {meant}?"]


def test_an_unrelated_unknown_top_level_key_is_only_warned_about(caplog):
    assert parse_config({"x-site": "north"}).aets == ()
    assert "unknown key x-site is ignored" in caplog.text


def test_a_yaml_syntax_error_names_the_file_once_with_line_and_column(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("server:\n  http: {port: 8080\naets: []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = config_problem_lines(path, caught.value)
    assert len(lines) == 1 and lines[0].count(str(path)) == 1, lines
    assert lines[0].startswith(f"{path}, line 3, column 5: not valid YAML: "), lines


def test_problem_lines_name_the_file_and_the_key(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("aets: [{aet: A, host: h}, {aet: A, host: h, port: 2}]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert config_problem_lines(path, caught.value) == [
        f"{path}: aets[0].port: is required",
        f"{path}: aets[1].aet: duplicate AE title 'A' (first at aets[0].aet)",
    ]
