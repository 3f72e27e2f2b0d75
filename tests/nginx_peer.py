"""A private nginx in front of a gateway, configured by the production sample etc/nginx/dicomrst.conf.

The sample is used as it ships; only its listen port and upstream address are replaced, so a test
through this nginx is a test of the file operators copy.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from tests.peers import REPO, PeerMissing, _stop, free_port, wait_until

SAMPLE_CONF = REPO / "etc" / "nginx" / "dicomrst.conf"
# The two directives of the sample that name this machine; everything else is kept verbatim.
SAMPLE_LISTEN = "listen 80;"
SAMPLE_UPSTREAM = "server 127.0.0.1:8080;"
# The external prefix the sample's location serves.
SAMPLE_PREFIX = "/dicomweb"


def nginx_binary() -> str:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise PeerMissing("nginx is not installed (apt-get install nginx)")
    return binary


class Nginx:
    """nginx on a free loopback port with the sample's server block, its files all under `folder`."""

    def __init__(self, folder: Path, upstream_port: int, server_conf: str | None = None) -> None:
        """`server_conf` replaces the sample's text (a test's variant of it); it must still contain the
        sample's listen and upstream directives, which are substituted here."""
        self.folder = folder
        self.upstream_port = upstream_port
        self.port = free_port()
        self.server_conf = server_conf if server_conf is not None else SAMPLE_CONF.read_text()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{SAMPLE_PREFIX}"

    @property
    def error_log(self) -> Path:
        return self.folder / "error.log"

    @property
    def access_log(self) -> Path:
        return self.folder / "access.log"

    def _server_block(self) -> str:
        text = self.server_conf
        for directive in (SAMPLE_LISTEN, SAMPLE_UPSTREAM):
            # Exactly once: a sample that no longer has the directive (or has it twice) must fail here,
            # not silently run with port 80 or the wrong upstream.
            if text.count(directive) != 1:
                raise ValueError(f"the nginx conf must contain {directive!r} exactly once")
        text = text.replace(SAMPLE_LISTEN, f"listen 127.0.0.1:{self.port};")
        return text.replace(SAMPLE_UPSTREAM, f"server 127.0.0.1:{self.upstream_port};")

    def _main_conf(self) -> str:
        temp = self.folder / "temp"
        # As root the workers would drop to `nobody`, who cannot enter pytest's private temp folders.
        user = "user root;\n" if os.geteuid() == 0 else ""
        return (
            f"{user}"
            "daemon off;\n"
            "worker_processes 1;\n"
            f"pid {self.folder / 'nginx.pid'};\n"
            f"error_log {self.error_log} info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {self.access_log};\n"
            f"    client_body_temp_path {temp / 'client_body'};\n"
            f"    proxy_temp_path {temp / 'proxy'};\n"
            f"    fastcgi_temp_path {temp / 'fastcgi'};\n"
            f"    uwsgi_temp_path {temp / 'uwsgi'};\n"
            f"    scgi_temp_path {temp / 'scgi'};\n"
            f"{self._server_block()}\n"
            "}\n"
        )

    def start(self) -> None:
        binary = nginx_binary()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "temp").mkdir(exist_ok=True)
        conf = self.folder / "nginx.conf"
        conf.write_text(self._main_conf())
        # -e: nginx opens its error log before reading the conf; the default path is not ours to write.
        # The child keeps its own copy of the output file's descriptor, so ours can close at once.
        with open(self.folder / "nginx.out", "wb") as output:
            self.process = subprocess.Popen(
                [binary, "-e", str(self.error_log), "-p", str(self.folder), "-c", str(conf)],
                stdout=output, stderr=output)

        def listening() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True

        try:
            wait_until(listening, 10, "nginx", self.process)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; its error log:\n{self._tail(self.error_log)}") from None

    def _tail(self, path: Path, lines: int = 20) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(none)"

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
