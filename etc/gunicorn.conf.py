"""gunicorn settings taken from the dicomrst config ($DICOMRST_CONFIG, default etc/dicomrst.yaml).

Flags given on the command line (-b, -w, ...) override what is set here, as gunicorn does for any
config file.
"""
import os
import threading
import sys
from pathlib import Path

from dicomrst.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, ConfigError, config_problem_lines, load_config
from dicomrst.runtime import metrics_directory, reap_metrics_directories, remove_if_empty

try:
    _config = load_config()
except ConfigError as _error:
    # The same lines as `dicomrst check-config`, and no traceback: the operator has one thing to fix.
    for _line in config_problem_lines(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH, _error):
        print(_line, file=sys.stderr)
    sys.exit(1)
_http = _config.server.http
# Workers share their metrics through files here (prometheus_client's multiprocess mode); one folder
# per gateway, emptied when the gateway starts.
_metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_directory(_http.port)))

worker_class = "gevent"
bind = [f"{_http.interface}:{_http.port}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = 1000
# gevent workers answer the heartbeat from their own greenlet, so this only catches a wedged worker.
timeout = max(30, _http.request_timeout // 1000)
graceful_timeout = _http.request_timeout // 1000 if _http.graceful_shutdown else 1
keepalive = 5
# gunicorn 23+ opens a control socket at one fixed path per user; two gateways on a host would
# fight over it, and nothing here needs it.
control_socket_disable = True
# Forwarded headers are the gateway's to judge (server.http.trusted-proxies, web/proxy.py): gunicorn would
# otherwise take X-Forwarded-Proto/-Ssl/-Protocol from any loopback client and turn RetrieveURLs into https.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
# The gateway logs each request itself, with its AET, bytes sent and request id.
accesslog = None
errorlog = "-"
loglevel = "debug" if _config.telemetry.level in ("DEBUG", "TRACE") else "info"

_receiver = None
_stopping = threading.Event()


def _json_errors() -> None:
    import gunicorn.util

    from dicomrst.server_errors import install

    install(gunicorn.util)


_json_errors()


def on_starting(server):
    """Check every port first, clear what dead gateways left, then start the move receiver: it is
    shared by all workers, so the master starts it, once."""
    global _receiver
    from dicomrst.processes import Listener, PortInUse, check_ports_free
    from dicomrst.receiver_process import receiver_listeners, start_receiver_process

    http = [Listener(address[0], address[1], "the gateway's HTTP server (server.http.port or -b)")
            for address in server.cfg.address if isinstance(address, tuple)]
    try:
        check_ports_free(http + receiver_listeners(_config))
    except PortInUse as error:
        print(f"dicomrst: {error}", file=sys.stderr)
        sys.exit(1)
    _reap_stale_runtime_files()
    os.makedirs(_metrics_dir, exist_ok=True)
    _clear_metrics()
    try:
        _receiver = start_receiver_process(_config, os.environ.get(CONFIG_ENV))
    except RuntimeError as error:
        print(f"dicomrst: {error}", file=sys.stderr)
        sys.exit(1)


def when_ready(server):
    """Watch the move receiver from here on: if it dies (a crash, a kill -9) it is started again, and
    said so in the log; meanwhile the workers answer C-MOVEs with 503 (backends/dimse/backend.py)."""
    if _receiver is not None:
        threading.Thread(target=_watch_receiver, name="receiver watch", daemon=True).start()


def _watch_receiver():
    import time

    from dicomrst.receiver_process import start_receiver_process

    global _receiver
    while _receiver is not None:
        # gunicorn's master reaps every child it sees die, the receiver included: wait() then returns 0
        # whatever the exit status was, which only the receiver's own log can tell.
        _receiver.wait()
        if _stopping.is_set():
            return
        print(f"dicomrst: the move receiver (pid {_receiver.pid}) exited; starting it again", file=sys.stderr, flush=True)
        while not _stopping.is_set():
            try:
                _receiver = start_receiver_process(_config, os.environ.get(CONFIG_ENV))
                print(f"dicomrst: the move receiver runs again (pid {_receiver.pid})", file=sys.stderr, flush=True)
                break
            except RuntimeError as error:
                print(f"dicomrst: {error}; trying again", file=sys.stderr, flush=True)
                time.sleep(1)


def post_worker_init(worker):
    """A response write that times out (a client too slow to read it before request-timeout, see
    web/request_log.py) is what was meant to happen: one line, not gunicorn's socket-error traceback.
    A request body is received in the blocks the app reads it in (STOW-RS's READ_SIZE): gunicorn
    receives up to 1 MiB at once otherwise, and copies what is left of it on each smaller read, each
    byte some fifteen times over (a tenth of a STOW-RS worker's time)."""
    from gunicorn.http.unreader import SocketUnreader

    from dicomrst.server_errors import SlowClientFilter
    from dicomrst.web.stow import READ_SIZE

    worker.log.error_log.addFilter(SlowClientFilter())
    SocketUnreader.max_body_chunk = READ_SIZE


def worker_int(worker):
    """Ctrl-C reaches every process of the terminal's group, and the master's quick stop sends
    SIGQUIT. gunicorn's worker answers both by calling this hook and then sys.exit() in a greenlet,
    which gevent reports as a 13-line SystemExit traceback. A quick stop is meant: end here, quietly."""
    sys.stderr.flush()
    os._exit(0)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    # A dead worker's gauges (associations open, moves in flight) must not count any more.
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    from dicomrst.backends.dimse.slot_files import default_slot_directory, remove_unused_slots
    from dicomrst.backends.dimse.config import DimseAetConfig
    from dicomrst.receiver_process import stop_receiver_process

    # Workers have finished their requests by now (graceful_timeout); the receiver drains last.
    _stopping.set()
    stop_receiver_process(_receiver, 30)
    for entry in _config.aets:
        if isinstance(entry, DimseAetConfig):
            remove_unused_slots(default_slot_directory(entry.aet, entry.host, entry.port))
    _clear_metrics()
    remove_if_empty(Path(_metrics_dir))  # only when empty: it may be a folder the operator named


def _reap_stale_runtime_files():
    from dicomrst.backends.dimse.slot_files import reap_slot_directories

    reap_slot_directories()
    reap_metrics_directories()


def _clear_metrics():
    import glob

    # Only prometheus_client's own files: the folder may be one the operator named.
    for name in glob.glob(os.path.join(_metrics_dir, "*.db")):
        os.unlink(name)
