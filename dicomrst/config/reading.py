"""Reading the YAML config key by key: a ``Section`` per mapping, and the value parsers every schema
(the core's and each backend kind's) uses, so that every problem names its key path.
"""
from __future__ import annotations

import difflib
import ipaddress
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("dicomrst.config")

# PS3.5 6.2 (AE VR): an AE title is 1-16 characters of the default repertoire, no backslash, no control
# characters.
_AET_PATTERN = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
# An AET under aets[] is also a URL path segment (/aets/{aet}): RFC 3986 3.3 lets a segment carry
# unreserved characters, sub-delims, ':' and '@' as they are; anything else would need percent-encoding,
# which clients and proxies treat differently.
_PATH_SEGMENT_PATTERN = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@]+$")
_PLAIN_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")  # the schema's keys are kebab-case words


class ConfigError(ValueError):
    """A config that cannot be used; the message starts with the key path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        return (self,)


class ConfigErrors(ConfigError):
    """Every problem of a config at once, so that one run of check-config lists them all. Its message
    is one line per problem; ``path`` is the first problem's."""

    def __init__(self, problems: list[ConfigError]) -> None:
        ValueError.__init__(self, "\n".join(str(problem) for problem in problems))
        self.path = problems[0].path
        self._problems = tuple(problems)

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        return self._problems


T = TypeVar("T")


class Section:
    """One mapping of the YAML file, read key by key so that every error carries its path.

    Problems are collected, not raised: the sections of one document share a list, and a value that
    cannot be read stands as its default (or None) so that reading goes on and every problem is found.
    """

    def __init__(self, raw: Any, path: str, problems: list[ConfigError] | None = None) -> None:
        self.problems: list[ConfigError] = [] if problems is None else problems
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.problem(path, f"expected a mapping, got {kind_of(raw)}")
            raw = {}
        self.raw: dict[str, Any] = raw
        self.path = path
        self.read: set[str] = set()

    def problem(self, path: str, message: str) -> None:
        self.problems.append(ConfigError(path, message))

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, parse: Callable[[Any, str], T], default: T) -> T:
        self.read.add(key)
        if self.raw.get(key) is None:
            return default
        return self._parse(key, parse, default)

    def require(self, key: str, parse: Callable[[Any, str], T]) -> Any:
        """The value, or None (with a problem recorded) when it is missing or wrong."""
        self.read.add(key)
        if self.raw.get(key) is None:
            self.problem(self.key_path(key), "is required")
            return None
        return self._parse(key, parse, None)

    def _parse(self, key: str, parse: Callable[[Any, str], T], fallback: Any) -> Any:
        try:
            return parse(self.raw[key], self.key_path(key))
        except ConfigError as error:
            self.problems.append(error)
            return fallback

    def section(self, key: str) -> Section:
        self.read.add(key)
        return Section(self.raw.get(key), self.key_path(key), self.problems)

    def warn_unknown(self, near_misses_of: tuple[str, ...] = ()) -> None:
        """Unknown keys are warned about; one that is a near miss of ``near_misses_of`` is an error,
        since it almost certainly meant that key (``aet:`` for ``aets:``)."""
        for key in self.raw:
            if key in self.read:
                continue
            # Only a plain word can be a typo of one: a key like "x.y" or "12:30" is something else.
            plain = isinstance(key, str) and _PLAIN_KEY.match(key)
            close = difflib.get_close_matches(key, near_misses_of, n=1, cutoff=0.75) if plain else []
            if close:
                self.problem(self.key_path(str(key)), f"unknown key; did you mean {close[0]}?")
            else:
                log.warning("config: unknown key %s is ignored", self.key_path(str(key)))

    def raise_problems(self) -> None:
        if len(self.problems) == 1:
            raise self.problems[0]
        if self.problems:
            raise ConfigErrors(self.problems)


def kind_of(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def shown(value: Any) -> str:
    """A value as an error message may quote it: bounded, and never failing (str() of an int of
    thousands of digits raises)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a number far too large"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def integer(minimum: int, maximum: int | None = None) -> Callable[[Any, str], int]:
    def parse(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected a whole number, got {shown(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(path, f"must be {bound}, got {shown(value)}")
        return value

    return parse


port = integer(1, 65535)
milliseconds = integer(1)
positive = integer(1)


def string(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(path, f"expected a string, got {kind_of(value)}")
    if isinstance(value, int) and value.bit_length() > 64:
        raise ConfigError(path, f"expected a string, got {shown(value)}")
    text = str(value).strip()
    if not text:
        raise ConfigError(path, "must not be empty")
    return text


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {shown(value)}")
    return value


def ae_title(value: Any, path: str) -> str:
    text = string(value, path)
    if not _AET_PATTERN.match(text):
        raise ConfigError(path, f"{text!r} is not a valid AE title (1-16 printable ASCII characters, no backslash)")
    return text


def route_ae_title(value: Any, path: str) -> str:
    text = ae_title(value, path)
    if not _PATH_SEGMENT_PATTERN.match(text):
        raise ConfigError(path, f"{text!r} cannot be a URL path segment (/aets/{{aet}}): use letters, digits and - . _ ~")
    return text


def choice(*choices: str, upper: bool = False) -> Callable[[Any, str], str]:
    def parse(value: Any, path: str) -> str:
        text = string(value, path)
        text = text.upper() if upper else text.lower()
        if text not in choices:
            raise ConfigError(path, f"must be one of {', '.join(choices)}, got {shown(value)}")
        return text

    return parse


def base_path(value: Any, path: str) -> str:
    text = string(value, path)
    if not text.startswith("/"):
        raise ConfigError(path, f"must start with '/', got {text!r}")
    if any(c in text for c in "?#%") or "//" in text:
        raise ConfigError(path, f"must be a plain URL path, got {text!r}")
    return text.rstrip("/") or "/"


def url(value: Any, path: str) -> str:
    text = string(value, path)
    if not re.match(r"^https?://[^/\s]+", text):
        raise ConfigError(path, f"must be an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def networks(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of addresses or networks, got {kind_of(value)}")
    networks = []
    for index, item in enumerate(value):
        try:
            networks.append(str(ipaddress.ip_network(string(item, f"{path}[{index}]"), strict=False)))
        except ValueError:
            raise ConfigError(f"{path}[{index}]", f"{item!r} is not an IP address or network") from None
    return tuple(networks)


def ae_titles(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of AE titles, got {kind_of(value)}")
    return tuple(ae_title(item, f"{path}[{index}]") for index, item in enumerate(value))


def sections(section: Section, key: str) -> list[Section] | None:
    section.read.add(key)
    raw = section.raw.get(key)
    if raw is None:
        return None
    if not isinstance(raw, list):
        section.problem(section.key_path(key), f"expected a list, got {kind_of(raw)}")
        return None
    return [Section(item, f"{section.key_path(key)}[{index}]", section.problems) for index, item in enumerate(raw)]


def timeout_of(section: Section, default: int) -> int:
    return section.get("timeout", milliseconds, default)
