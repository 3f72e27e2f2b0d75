"""The DICOM-RST YAML schema, read into frozen dataclasses.

Every error names the key path that is wrong (``aets[1].port``), so a bad config stops start-up with a
message the operator can act on. Unknown keys are warned about rather than refused: DICOM-RST configs
may carry keys from newer versions, and a typo should be visible without taking the gateway down.
Times are milliseconds, as in DICOM-RST.
"""
from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from collections.abc import Callable

import yaml

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = "etc/dicomrst.yaml"
CONFIG_ENV = "DICOMRST_CONFIG"

# PS3.5 6.2 (AE VR): an AE title is 1-16 characters of the default repertoire, no backslash, no control
# characters.
_AET_PATTERN = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")
# An AET under aets[] is also a URL path segment (/aets/{aet}): RFC 3986 3.3 lets a segment carry
# unreserved characters, sub-delims, ':' and '@' as they are; anything else would need percent-encoding,
# which clients and proxies treat differently.
_PATH_SEGMENT_PATTERN = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@]+$")
_TOP_LEVEL_KEYS = ("telemetry", "server", "aets")
_PLAIN_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL")


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


def config_problem_lines(location: str | os.PathLike[str], error: ConfigError) -> list[str]:
    """One line per problem as check-config and start-up print them: ``FILE: key.path: message``.
    Problems of the file itself (unreadable, not YAML) already name it."""
    return [f"{location}: {problem}" if problem.path else str(problem) for problem in error.problems]


@dataclass(frozen=True)
class TelemetryConfig:
    level: str = "INFO"
    sentry: str | None = None


@dataclass(frozen=True)
class TokenConfig:
    """A bearer token (given directly, or by the environment variable that holds it) and the AETs it
    opens; ``*`` opens all."""

    aets: tuple[str, ...]
    token: str | None = None
    token_env: str | None = None


@dataclass(frozen=True)
class HttpConfig:
    interface: str = "0.0.0.0"
    port: int = 8080
    max_upload_size: int = 50_000_000
    request_timeout: int = 60_000
    graceful_shutdown: bool = True
    base_path: str = "/"
    # Our extensions: the proxies whose X-Forwarded-* headers are believed, and the origins browser
    # viewers may call from (CORS).
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    allowed_origins: tuple[str, ...] = ("*",)
    # Our extension: bearer tokens; none means no access control.
    auth: tuple[TokenConfig, ...] = ()


@dataclass(frozen=True)
class ReceiverConfig:
    """A Storage SCP that receives what C-MOVE sends (``server.dimse[]``)."""

    aet: str = "DICOM-RST"
    interface: str = "0.0.0.0"
    port: int = 7001
    uncompressed: bool = True


@dataclass(frozen=True)
class ServerConfig:
    aet: str = "DICOM-RST"
    http: HttpConfig = field(default_factory=HttpConfig)
    dimse: tuple[ReceiverConfig, ...] = (ReceiverConfig(),)


@dataclass(frozen=True)
class PoolConfig:
    size: int = 16
    timeout: int = 10_000


@dataclass(frozen=True)
class QidoConfig:
    timeout: int = 10_000


@dataclass(frozen=True)
class StowConfig:
    timeout: int = 10_000


@dataclass(frozen=True)
class WadoConfig:
    timeout: int = 30_000
    mode: Literal["concurrent", "sequential"] = "concurrent"
    receivers: tuple[str, ...] = ()
    method: Literal["move", "get"] = "move"


@dataclass(frozen=True)
class DimseAetConfig:
    aet: str
    host: str
    port: int
    pool: PoolConfig = field(default_factory=PoolConfig)
    qido_rs: QidoConfig = field(default_factory=QidoConfig)
    stow_rs: StowConfig = field(default_factory=StowConfig)
    wado_rs: WadoConfig = field(default_factory=WadoConfig)
    backend: Literal["DIMSE"] = "DIMSE"


@dataclass(frozen=True)
class S3Credentials:
    access_key: str | None = None
    secret_key: str | None = None
    access_key_env: str | None = None
    secret_key_env: str | None = None


@dataclass(frozen=True)
class S3AetConfig:
    aet: str
    endpoint: str
    bucket: str
    region: str | None = None
    endpoint_style: Literal["path", "vhost"] = "vhost"
    concurrency: int = 32
    credentials: S3Credentials | None = None
    backend: Literal["S3"] = "S3"


AetConfig = DimseAetConfig | S3AetConfig


@dataclass(frozen=True)
class Config:
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    aets: tuple[AetConfig, ...] = ()

    def aet(self, name: str) -> AetConfig | None:
        return next((entry for entry in self.aets if entry.aet == name), None)


# ---------------------------------------------------------------------------------------------- reading

T = TypeVar("T")


class _Section:
    """One mapping of the YAML file, read key by key so that every error carries its path.

    Problems are collected, not raised: the sections of one document share a list, and a value that
    cannot be read stands as its default (or None) so that reading goes on and every problem is found.
    """

    def __init__(self, raw: Any, path: str, problems: list[ConfigError] | None = None) -> None:
        self.problems: list[ConfigError] = [] if problems is None else problems
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.problem(path, f"expected a mapping, got {_kind(raw)}")
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

    def section(self, key: str) -> _Section:
        self.read.add(key)
        return _Section(self.raw.get(key), self.key_path(key), self.problems)

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


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _shown(value: Any) -> str:
    """A value as an error message may quote it: bounded, and never failing (str() of an int of
    thousands of digits raises)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a number far too large"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _integer(minimum: int, maximum: int | None = None) -> Callable[[Any, str], int]:
    def parse(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected a whole number, got {_shown(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(path, f"must be {bound}, got {_shown(value)}")
        return value

    return parse


_port = _integer(1, 65535)
_milliseconds = _integer(1)
_positive = _integer(1)


def _string(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(path, f"expected a string, got {_kind(value)}")
    if isinstance(value, int) and value.bit_length() > 64:
        raise ConfigError(path, f"expected a string, got {_shown(value)}")
    text = str(value).strip()
    if not text:
        raise ConfigError(path, "must not be empty")
    return text


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true or false, got {_shown(value)}")
    return value


def _aet(value: Any, path: str) -> str:
    text = _string(value, path)
    if not _AET_PATTERN.match(text):
        raise ConfigError(path, f"{text!r} is not a valid AE title (1-16 printable ASCII characters, no backslash)")
    return text


def _route_aet(value: Any, path: str) -> str:
    text = _aet(value, path)
    if not _PATH_SEGMENT_PATTERN.match(text):
        raise ConfigError(path, f"{text!r} cannot be a URL path segment (/aets/{{aet}}): use letters, digits and - . _ ~")
    return text


def _choice(*choices: str, upper: bool = False) -> Callable[[Any, str], str]:
    def parse(value: Any, path: str) -> str:
        text = _string(value, path)
        text = text.upper() if upper else text.lower()
        if text not in choices:
            raise ConfigError(path, f"must be one of {', '.join(choices)}, got {_shown(value)}")
        return text

    return parse


def _base_path(value: Any, path: str) -> str:
    text = _string(value, path)
    if not text.startswith("/"):
        raise ConfigError(path, f"must start with '/', got {text!r}")
    if any(c in text for c in "?#%") or "//" in text:
        raise ConfigError(path, f"must be a plain URL path, got {text!r}")
    return text.rstrip("/") or "/"


def _url(value: Any, path: str) -> str:
    text = _string(value, path)
    if not re.match(r"^https?://[^/\s]+", text):
        raise ConfigError(path, f"must be an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def _networks(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of addresses or networks, got {_kind(value)}")
    networks = []
    for index, item in enumerate(value):
        try:
            networks.append(str(ipaddress.ip_network(_string(item, f"{path}[{index}]"), strict=False)))
        except ValueError:
            raise ConfigError(f"{path}[{index}]", f"{item!r} is not an IP address or network") from None
    return tuple(networks)


def _auth(section: _Section) -> tuple[TokenConfig, ...]:
    entries = _list(section, "tokens") or []
    section.warn_unknown()
    tokens = []
    for entry in entries:
        token = TokenConfig(
            aets=entry.require("aets", _aets_or_all),
            token=entry.get("token", _string, None),
            token_env=entry.get("token-env", _string, None),
        )
        if (token.token is None) == (token.token_env is None):
            entry.problem(entry.path, "give either token or token-env")
        entry.warn_unknown()
        tokens.append(token)
    return tuple(tokens)


def _aets_or_all(value: Any, path: str) -> tuple[str, ...]:
    if value == "*":
        return ("*",)
    if isinstance(value, list) and value == ["*"]:
        return ("*",)
    return _receivers_list(value, path)


def _origins(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(path, f"expected a list of origins (or *), got {_kind(value)}")
    origins = []
    for index, item in enumerate(value):
        origin = _string(item, f"{path}[{index}]").rstrip("/")
        if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
            raise ConfigError(f"{path}[{index}]", f"{origin!r} is not an origin like https://viewer.example.org or *")
        origins.append(origin)
    return tuple(origins)


def _telemetry(section: _Section) -> TelemetryConfig:
    level = section.get("level", _choice(*_LOG_LEVELS, upper=True), "INFO")
    sentry = section.get("sentry", _string, None)
    section.warn_unknown()
    return TelemetryConfig(level="WARNING" if level == "WARN" else level, sentry=sentry)


def _http(section: _Section) -> HttpConfig:
    defaults = HttpConfig()
    http = HttpConfig(
        interface=section.get("interface", _string, defaults.interface),
        port=section.get("port", _port, defaults.port),
        max_upload_size=section.get("max-upload-size", _positive, defaults.max_upload_size),
        request_timeout=section.get("request-timeout", _milliseconds, defaults.request_timeout),
        graceful_shutdown=section.get("graceful-shutdown", _boolean, defaults.graceful_shutdown),
        base_path=section.get("base-path", _base_path, defaults.base_path),
        trusted_proxies=section.get("trusted-proxies", _networks, defaults.trusted_proxies),
        allowed_origins=section.get("allowed-origins", _origins, defaults.allowed_origins),
        auth=_auth(section.section("auth")),
    )
    section.warn_unknown()
    return http


def _receiver(section: _Section) -> ReceiverConfig:
    defaults = ReceiverConfig()
    receiver = ReceiverConfig(
        aet=section.get("aet", _aet, defaults.aet),  # DICOM-RST's default, as the README says
        interface=section.get("interface", _string, defaults.interface),
        port=section.get("port", _port, defaults.port),
        uncompressed=section.get("uncompressed", _boolean, defaults.uncompressed),
    )
    section.warn_unknown()
    return receiver


def _list(section: _Section, key: str) -> list[_Section] | None:
    section.read.add(key)
    raw = section.raw.get(key)
    if raw is None:
        return None
    if not isinstance(raw, list):
        section.problem(section.key_path(key), f"expected a list, got {_kind(raw)}")
        return None
    return [_Section(item, f"{section.key_path(key)}[{index}]", section.problems) for index, item in enumerate(raw)]


def _server(section: _Section) -> ServerConfig:
    receivers = _list(section, "dimse")
    server = ServerConfig(
        aet=section.get("aet", _aet, ServerConfig.aet),
        http=_http(section.section("http")),
        dimse=ServerConfig().dimse if receivers is None else tuple(_receiver(item) for item in receivers),
    )
    _unique(section, [(r.aet, f"{section.key_path('dimse')}[{i}].aet") for i, r in enumerate(server.dimse)])
    section.warn_unknown()
    return server


def _timeout_section(section: _Section, default: int) -> int:
    return section.get("timeout", _milliseconds, default)


def _receivers_list(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of AE titles, got {_kind(value)}")
    return tuple(_aet(item, f"{path}[{index}]") for index, item in enumerate(value))


def _dimse_aet(section: _Section, aet: str) -> DimseAetConfig:
    pool_section = section.section("pool")
    pool = PoolConfig(
        size=pool_section.get("size", _positive, PoolConfig.size),
        timeout=pool_section.get("timeout", _milliseconds, PoolConfig.timeout),
    )
    pool_section.warn_unknown()
    qido_section = section.section("qido-rs")
    qido = QidoConfig(timeout=_timeout_section(qido_section, QidoConfig.timeout))
    qido_section.warn_unknown()
    stow_section = section.section("stow-rs")
    stow = StowConfig(timeout=_timeout_section(stow_section, StowConfig.timeout))
    stow_section.warn_unknown()
    wado_section = section.section("wado-rs")
    wado = WadoConfig(
        timeout=_timeout_section(wado_section, WadoConfig.timeout),
        mode=wado_section.get("mode", _choice("concurrent", "sequential"), WadoConfig.mode),  # type: ignore[arg-type]
        receivers=wado_section.get("receivers", _receivers_list, ()),
        method=wado_section.get("method", _choice("move", "get"), WadoConfig.method),  # type: ignore[arg-type]
    )
    wado_section.warn_unknown()
    return DimseAetConfig(
        aet=aet,
        host=section.require("host", _string),
        port=section.require("port", _port),
        pool=pool,
        qido_rs=qido,
        stow_rs=stow,
        wado_rs=wado,
    )


def _credentials(section: _Section) -> S3Credentials | None:
    if not section.raw:
        section.warn_unknown()
        return None
    credentials = S3Credentials(
        access_key=section.get("access-key", _string, None),
        secret_key=section.get("secret-key", _string, None),
        access_key_env=section.get("access-key-env", _string, None),
        secret_key_env=section.get("secret-key-env", _string, None),
    )
    section.warn_unknown()
    has_access = credentials.access_key is not None or credentials.access_key_env is not None
    has_secret = credentials.secret_key is not None or credentials.secret_key_env is not None
    if has_access != has_secret:
        section.problem(section.path, "needs both an access key and a secret key (or neither, for anonymous access)")
    if credentials.access_key is not None and credentials.access_key_env is not None:
        section.problem(section.path, "give access-key or access-key-env, not both")
    if credentials.secret_key is not None and credentials.secret_key_env is not None:
        section.problem(section.path, "give secret-key or secret-key-env, not both")
    return credentials if has_access else None


def _s3_aet(section: _Section, aet: str) -> S3AetConfig:
    return S3AetConfig(
        aet=aet,
        endpoint=section.require("endpoint", _url),
        bucket=section.require("bucket", _bucket),
        region=section.get("region", _string, None),
        endpoint_style=section.get("endpoint-style", _choice("path", "vhost"), "vhost"),  # type: ignore[arg-type]
        concurrency=section.get("concurrency", _positive, S3AetConfig.concurrency),
        credentials=_credentials(section.section("credentials")),
    )


def _bucket(value: Any, path: str) -> str:
    text = _string(value, path)
    if not re.match(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$", text):
        raise ConfigError(path, f"{text!r} is not a valid S3 bucket name")
    return text


def _aet_entry(section: _Section) -> AetConfig:
    aet = section.require("aet", _route_aet)
    backend = section.get("backend", _choice("DIMSE", "S3", upper=True), "DIMSE")
    entry: AetConfig = _dimse_aet(section, aet) if backend == "DIMSE" else _s3_aet(section, aet)
    section.warn_unknown()
    return entry


def _unique(section: _Section, names_and_paths: list[tuple[str | None, str]]) -> None:
    seen: dict[str, str] = {}
    for name, path in names_and_paths:
        if name is None:  # unreadable, and said so already
            continue
        if name in seen:
            section.problem(path, f"duplicate AE title {name!r} (first at {seen[name]})")
        seen.setdefault(name, path)


def _check_receivers(section: _Section, config: Config) -> None:
    receiver_aets = {receiver.aet for receiver in config.server.dimse}
    for index, entry in enumerate(config.aets):
        if not isinstance(entry, DimseAetConfig):
            continue
        if entry.wado_rs.method == "move" and not receiver_aets:
            section.problem(
                f"aets[{index}].wado-rs",
                "C-MOVE needs a receiver: list one under server.dimse, or set method: get",
            )
        for position, receiver in enumerate(entry.wado_rs.receivers):
            if receiver not in receiver_aets:
                section.problem(
                    f"aets[{index}].wado-rs.receivers[{position}]",
                    f"receiver {receiver!r} is not listed under server.dimse",
                )


def _with_default_receivers(config: Config) -> Config:
    """An AET that names no receivers uses the first Storage SCP, as DICOM-RST does."""
    if not config.server.dimse:
        return config
    first = config.server.dimse[0].aet
    aets = tuple(
        _replace_receivers(entry, (first,))
        if isinstance(entry, DimseAetConfig) and not entry.wado_rs.receivers
        else entry
        for entry in config.aets
    )
    return Config(telemetry=config.telemetry, server=config.server, aets=aets)


def _replace_receivers(entry: DimseAetConfig, receivers: tuple[str, ...]) -> DimseAetConfig:
    from dataclasses import replace

    return replace(entry, wado_rs=replace(entry.wado_rs, receivers=receivers))


def parse_config(raw: Any) -> Config:
    """Turn the parsed YAML document into a Config, or raise ConfigError naming the key path."""
    root = _Section(raw, "")
    entries = _list(root, "aets") or []
    config = Config(
        telemetry=_telemetry(root.section("telemetry")),
        server=_server(root.section("server")),
        aets=tuple(_aet_entry(entry) for entry in entries),
    )
    root.warn_unknown(near_misses_of=_TOP_LEVEL_KEYS)
    _unique(root, [(entry.aet, f"aets[{index}].aet") for index, entry in enumerate(config.aets)])
    _check_receivers(root, config)
    root.raise_problems()
    return _with_default_receivers(config)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the YAML file named by ``path``, else by $DICOMRST_CONFIG, else etc/dicomrst.yaml."""
    location = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    try:
        text = location.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError("", f"cannot read config file {location}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError("", f"{location} is not UTF-8 text: {error.reason} at byte {error.start}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        raise ConfigError("", _yaml_syntax_error(location, error)) from None
    except yaml.YAMLError as error:
        raise ConfigError("", f"{location} is not valid YAML: {error}") from None
    except RecursionError:
        raise ConfigError("", f"{location} is nested too deeply to read") from None
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as error:
        # PyYAML's constructors raise these for scalars they cannot build (2024-02-30, !!int abc).
        raise ConfigError("", f"{location} holds a value YAML cannot read: {error}") from None
    try:
        return parse_config(raw)
    except ConfigError as error:
        # A problem of the document as a whole (its root is not a mapping) names the file.
        problems = [problem if problem.path else ConfigError("", f"{location}: {problem}")
                    for problem in error.problems]
        raise (problems[0] if len(problems) == 1 else ConfigErrors(problems)) from None


def _yaml_syntax_error(location: Path, error: yaml.MarkedYAMLError) -> str:
    """``FILE, line L, column C: not valid YAML: what``, naming the file once (PyYAML's own message
    names the string it was given and repeats the position for each mark)."""
    mark = error.problem_mark or error.context_mark
    where = f"{location}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(location)
    what = "; ".join(part for part in (error.context, error.problem) if part)
    return f"{where}: not valid YAML: {what}"
