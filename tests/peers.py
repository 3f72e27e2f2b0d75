"""Real peers for the integration tests and benchmarks: Orthanc, the gateway under gunicorn, a PACS
that never answers, PostgreSQL. Each runs on free loopback ports with its own temporary storage."""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import requests
import yaml
from pydicom import Dataset

REPO = Path(__file__).resolve().parent.parent
ORTHANC_BINARY = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
ORTHANC_DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


class PeerMissing(RuntimeError):
    """A peer the tests need is not installed; CI must install it, so this fails rather than skips."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check: Any, timeout: float, what: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} while starting")
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:g} s")


def _stop(process: subprocess.Popen[bytes], timeout: float = 15, stop_signal: int = signal.SIGTERM,
          group: bool = False) -> None:
    """``group`` is for a server started in a session of its own whose children would outlive it if it
    alone were killed: the last resort then kills the whole process group."""
    if process.poll() is not None:
        return
    process.send_signal(stop_signal)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        if group:
            # Before the wait reaps it, so the group's id cannot have been reused.
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()


@dataclass
class Orthanc:
    aet: str
    dicom_port: int
    http_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def upload(self, part10: bytes) -> dict[str, Any]:
        response = requests.post(f"{self.url}/instances", data=part10, timeout=30)
        response.raise_for_status()
        return response.json()

    def delete_study(self, study_uid: str) -> None:
        """Remove what a test added, so the session's Orthanc holds its known studies again."""
        for entry in requests.post(f"{self.url}/tools/lookup", data=study_uid, timeout=10).json():
            if entry["Type"] == "Study":
                requests.delete(f"{self.url}/studies/{entry['ID']}", timeout=120).raise_for_status()

    def add_modality(self, aet: str, port: int, host: str = "127.0.0.1") -> None:
        """Tell Orthanc where a C-MOVE destination AET lives."""
        response = requests.put(f"{self.url}/modalities/{aet}", json={"AET": aet, "Host": host, "Port": port},
                                timeout=10)
        response.raise_for_status()

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)

    def start(self, modalities: Mapping[str, tuple[str, int]], dicomweb_servers: Mapping[str, str] = {}) -> None:
        """``dicomweb_servers`` makes this Orthanc a DICOMweb client of those roots (name -> URL)."""
        if not Path(ORTHANC_BINARY).exists():
            raise PeerMissing("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
        if not Path(ORTHANC_DICOMWEB_PLUGIN).exists():
            raise PeerMissing("Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
        storage = self.directory / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        settings = {
            "Name": "dicomrst-test",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "DicomAlwaysAllowGet": True,
            "SyncStorageArea": False,
            # Orthanc answers C-FIND in its default encoding (Latin-1 unless told), whatever the
            # request asks for; UTF-8 keeps ideographic names intact.
            "DefaultEncoding": "Utf8",
            "StorageCompression": False,
            "DicomModalities": {name: [name, host, port] for name, (host, port) in modalities.items()},
            "Plugins": [ORTHANC_DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full", "SeriesMetadata": "Full",
                         "Servers": {name: [url] for name, url in dicomweb_servers.items()}},
            "HttpTimeout": 60,
            "DicomScuTimeout": 30,
        }
        config_path = self.directory / "orthanc.json"
        config_path.write_text(json.dumps(settings, indent=2))
        log = open(self.directory / "orthanc.log", "wb")
        # Orthanc (DCMTK) leaves Nagle on unless told, which stalls every C-STORE by ~40 ms.
        environment = {**os.environ, "TCP_NODELAY": "1"}
        self.process = subprocess.Popen([ORTHANC_BINARY, str(config_path)], stdout=log, stderr=log, env=environment)
        wait_until(lambda: requests.get(f"{self.url}/system", timeout=1).ok, 30, "Orthanc", self.process)


def start_orthanc(directory: Path, modalities: Mapping[str, tuple[str, int]] = {}, aet: str = "ORTHANC",
                  dicomweb_servers: Mapping[str, str] = {}) -> Orthanc:
    orthanc = Orthanc(aet=aet, dicom_port=free_port(), http_port=free_port(), directory=directory)
    orthanc.start(modalities, dicomweb_servers)
    return orthanc


POSTGRES_BINARIES = Path("/usr/lib/postgresql")
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def postgres_binaries() -> Path:
    """The bin directory of the newest PostgreSQL Debian has installed (several major versions may sit side
    by side during an upgrade)."""
    candidates = [path.parent for path in POSTGRES_BINARIES.glob("*/bin/postgres")
                  if (path.parent / "initdb").exists() and path.parent.parent.name.replace(".", "").isdigit()]
    if not candidates:
        raise PeerMissing(f"PostgreSQL is not installed: no {POSTGRES_BINARIES}/*/bin/postgres "
                          "(apt-get install postgresql)")
    return max(candidates, key=lambda path: tuple(int(part) for part in path.parent.name.split(".")))


@dataclass
class Postgres:
    """PostgreSQL's own server with a cluster of its own: trust authentication for the user ``postgres`` on
    loopback TCP only, and none of the durability a test database has no use for.

    PostgreSQL refuses to run as root, which the tests are in CI. Then the cluster lives in a fresh
    directory owned by the ``postgres`` system user that Debian's package creates (pytest's own directories
    under /tmp/pytest-of-root are closed to other users), and initdb and the server run as that user;
    ``stop`` removes that directory. The log stays in ``directory`` either way."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    binaries: Path | None = None
    home: Path | None = None  # the cluster's data directory and socket live here

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.binaries = postgres_binaries()
        account = self._account()
        if account is None:
            self.home = self.directory
        else:
            self.home = Path(tempfile.mkdtemp(prefix="dicomrst-postgres-"))
            os.chown(self.home, account.pw_uid, account.pw_gid)
        try:
            self._initdb(account)
            command = [str(self.binaries / "postgres"), "-D", str(self.home / "data"), "-p", str(self.port),
                       "-k", str(self.home), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                       "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
            with open(self.log_path, "ab") as log:
                # The server itself, not a wrapper such as runuser, so that stopping this process stops it;
                # a session of its own lets stop() reach its backends too should it have to kill it.
                self.process = subprocess.Popen(command, cwd=self.home, stdout=log, stderr=log,
                                                start_new_session=True, **self._as(account))
            wait_until(self._accepting, 30, f"PostgreSQL (log: {self.log_path})", self.process)
        except BaseException:
            self.stop()
            raise

    def create_database(self, name: str) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        if not _DATABASE_NAME.fullmatch(name):
            # Unquoted in SQL and in the URL alike, so only names that need neither quoting nor escaping.
            raise ValueError(f"not a plain lower-case PostgreSQL identifier: {name!r}")
        assert self.binaries is not None, "start() first"
        result = subprocess.run([str(self.binaries / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                 "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                                 "-c", f"CREATE DATABASE {name}"], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE {name} failed: {result.stderr.strip()}")
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None:
            # Fast shutdown: SIGTERM asks for a smart one, which waits for every pooled connection to close.
            _stop(self.process, stop_signal=signal.SIGINT, group=True)
        if self.home is not None and self.home != self.directory:
            shutil.rmtree(self.home, ignore_errors=True)

    @staticmethod
    def _account() -> pwd.struct_passwd | None:
        """The user to run PostgreSQL as, when this process is root and PostgreSQL would refuse to."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise PeerMissing("running as root, and there is no postgres user to run PostgreSQL as "
                              "(apt-get install postgresql creates it)") from None

    @staticmethod
    def _as(account: pwd.struct_passwd | None) -> dict[str, Any]:
        """Popen's arguments that drop root for ``account``, root's supplementary groups included."""
        if account is None:
            return {}
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": [],
                "env": {**os.environ, "HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name}}

    def _initdb(self, account: pwd.struct_passwd | None) -> None:
        assert self.binaries is not None and self.home is not None
        command = [str(self.binaries / "initdb"), "-D", str(self.home / "data"), "-U", "postgres", "--auth=trust",
                   "-E", "UTF8", "--locale=C", "--no-sync"]
        result = subprocess.run(command, cwd=self.home, capture_output=True, text=True, timeout=120, **self._as(account))
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed with code {result.returncode}: {result.stderr.strip()}")

    def _accepting(self) -> bool:
        assert self.binaries is not None
        command = [str(self.binaries / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                   "-d", "postgres", "-t", "1"]
        try:
            return subprocess.run(command, timeout=5).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def start_postgres(directory: Path) -> Postgres:
    postgres = Postgres(directory=directory)
    postgres.start()
    return postgres


@dataclass
class Gateway:
    """dicomrst under gunicorn with gevent workers, as it is deployed."""

    config: dict[str, Any]
    directory: Path
    workers: int = 2
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "gateway.log"

    def start(self) -> None:
        config_path = self.directory / "dicomrst.yaml"
        # Each gateway of the tests keeps its retrieve cache to itself.
        self.config.setdefault("server", {}).setdefault("cache", {"path": str(self.directory / "cache")})
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True))
        environment = {**os.environ, **self.environment, "DICOMRST_CONFIG": str(config_path)}
        command = [sys.executable, "-m", "gunicorn", "-c", "etc/gunicorn.conf.py", "wsgi:app",
                   "-b", f"127.0.0.1:{self.port}", "-w", str(self.workers)]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=log, stderr=log)
        wait_until(lambda: requests.get(f"{self.url}/aets", timeout=1).ok, 30, f"the gateway (log: {self.log_path})", self.process)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` on /metrics whose labels include ``labels``."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for found, value in re.findall(rf"^{name}\{{([^}}]*)\}} ([0-9.e+]+)$", text, re.MULTILINE):
            if all(f'{key}="{want}"' in found for key, want in labels.items()):
                total += float(value)
        return total

    def retrievals(self, **labels: str) -> float:
        """C-MOVEs and C-GETs issued, counted as they end."""
        return sum(self.metric("dicomrst_dimse_operations_total", operation=operation, **labels)
                   for operation in ("C-MOVE", "C-GET"))


def gateway_config(aets: Iterable[dict[str, Any]], receiver_aet: str = "DICOMRST-TEST",
                   uncompressed: bool = True, **http: Any) -> dict[str, Any]:
    return {
        "telemetry": {"level": "INFO"},
        "server": {
            "aet": "DICOMRST-TEST",
            "http": {"interface": "127.0.0.1", "port": 8080, **http},
            "dimse": [{"aet": receiver_aet, "interface": "127.0.0.1", "port": free_port(),
                       "uncompressed": uncompressed}],
        },
        "aets": list(aets),
    }


def part10(dataset: Dataset) -> bytes:
    """A dataset as the Part-10 file a PACS or a client would hold."""
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def receiver_of(config: dict[str, Any]) -> tuple[str, int]:
    receiver = config["server"]["dimse"][0]
    return receiver["aet"], receiver["port"]


class SilentPacs:
    """Accepts TCP connections and never says a word: the PACS that hangs."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            self._connections.append(connection)

    def close(self) -> None:
        self._server.close()
        for connection in self._connections:
            connection.close()


class StoreScp:
    """DCMTK's storescp writing what it receives into a folder."""

    aet = "STORESCP"

    def __init__(self, folder: Path, options: Sequence[str] = ()) -> None:
        self.folder = folder
        self.options = list(options)  # storescp's own, e.g. --dimse-timeout 2 (it drops idle associations)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # DCMTK's, not a Python package's script of the same name that may come first on PATH.
        binary = "/usr/bin/storescp" if Path("/usr/bin/storescp").exists() else shutil.which("storescp")
        if binary is None:
            raise PeerMissing("DCMTK is not installed (apt-get install dcmtk)")
        log = open(self.folder.parent / f"{self.folder.name}.log", "wb")
        self.process = subprocess.Popen([binary, *self.options, "-aet", self.aet, "-od", str(self.folder), str(self.port)],
                                        stdout=log, stderr=log, env={**os.environ, "TCP_NODELAY": "1"})

        def listening() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True

        wait_until(listening, 10, "storescp", self.process)

    def received(self, sop_instance_uid: str) -> Path | None:
        return next((path for path in self.folder.iterdir() if path.name.endswith(f".{sop_instance_uid}")), None)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


class MotoS3:
    """moto's standalone server: an S3 API over HTTP, in memory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("moto_server")
        if binary is None:
            raise PeerMissing("moto's server is not installed (pip install 'moto[server]')")
        log = open(self.folder / "moto.log", "wb")
        self.process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=log)
        wait_until(lambda: requests.get(f"{self.endpoint}/moto-api/", timeout=1).status_code < 500, 30, "moto_server",
                   self.process)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


def processes_with_environment(name: str, value: str) -> list[int]:
    """Pids of the live processes whose environment has ``name=value``: a gateway started with its own
    config path marks every process it starts (master, workers, receiver, sample PACS) that way."""
    wanted = f"{name}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0") and not _zombie(entry):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _zombie(entry: Path) -> bool:
    status = (entry / "stat").read_text()
    return status[status.rindex(")") + 2:].startswith("Z")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


class DcmQrScp:
    """DCMTK's dcmqrscp: a classic Query/Retrieve SCP, as many older PACS behave. It answers
    hierarchical queries only (keys above the query level and optional keys it does not keep are
    ignored), matches person names case-sensitively, leaves out ModalitiesInStudy, the related counts and
    instance-level SOPClassUID, and rejects associations past ``max_associations`` transiently.
    ``strict`` (-XF) refuses relational queries outright. ``read_only_aet`` is an AE whose storage area
    takes no C-STORE."""

    def __init__(self, folder: Path, aet: str = "DCMQR", max_associations: int = 16, strict: bool = False,
                 read_only_aet: str | None = None) -> None:
        self.folder = folder
        self.aet = aet
        self.port = free_port()
        self.max_associations = max_associations
        self.strict = strict
        self.read_only_aet = read_only_aet
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, destinations: Mapping[str, tuple[str, int]]) -> None:
        binary = shutil.which("dcmqrscp") or "/usr/bin/dcmqrscp"
        if not Path(binary).exists():
            raise PeerMissing("DCMTK is not installed (apt-get install dcmtk)")
        storage = self.folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        hosts = "\n".join(f"peer{index} = ({aet}, {host}, {port})"
                          for index, (aet, (host, port)) in enumerate(destinations.items()))
        areas = f"{self.aet} {storage} RW (5000, 1024mb) ANY\n"
        if self.read_only_aet:
            read_only = self.folder / "read-only"
            read_only.mkdir(exist_ok=True)
            areas += f"{self.read_only_aet} {read_only} R (5000, 1024mb) ANY\n"
        config = self.folder / "dcmqrscp.cfg"
        config.write_text(
            f"NetworkTCPPort = {self.port}\nMaxPDUSize = 16384\nMaxAssociations = {self.max_associations}\n"
            f"HostTable BEGIN\n{hosts}\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
            f"AETable BEGIN\n{areas}AETable END\n"
        )
        log = open(self.folder / "dcmqrscp.log", "wb")
        command = [binary, "-c", str(config)] + (["-XF"] if self.strict else [])
        # DCMTK leaves Nagle on unless told, which stalls every PDU by ~40 ms.
        self.process = subprocess.Popen(command, cwd=self.folder, stdout=log, stderr=log,
                                        env={**os.environ, "TCP_NODELAY": "1"})

        def listening() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True

        wait_until(listening, 10, "dcmqrscp", self.process)

    def store(self, files: Iterable[Path]) -> None:
        """Fill its storage area as a modality would: C-STORE with DCMTK's storescu."""
        binary = "/usr/bin/storescu" if Path("/usr/bin/storescu").exists() else shutil.which("storescu")
        if binary is None:
            raise PeerMissing("DCMTK is not installed (apt-get install dcmtk)")
        subprocess.run([binary, "-aec", self.aet, "127.0.0.1", str(self.port), *map(str, files)], check=True,
                       env={**os.environ, "TCP_NODELAY": "1"}, capture_output=True, timeout=120)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
