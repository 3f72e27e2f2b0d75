"""gunicorn settings taken from the dicomrst config ($DICOMRST_CONFIG, default etc/dicomrst.yaml).

Flags given on the command line (-b, -w, ...) override what is set here, as gunicorn does for any
config file.
"""
import glob
import os
import tempfile

from dicomrst.config import load_config

_config = load_config()
_http = _config.server.http
# Workers share their metrics through files here (prometheus_client's multiprocess mode); one folder
# per gateway, emptied when the gateway starts.
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(tempfile.gettempdir(), f"dicomrst-{os.getuid()}", f"metrics-{_http.port}-{os.getpid()}"),
)

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
# The gateway logs each request itself, with its AET, bytes sent and request id.
accesslog = None
errorlog = "-"
loglevel = "debug" if _config.telemetry.level in ("DEBUG", "TRACE") else "info"

_receiver = None


def on_starting(server):
    """The move receiver is shared by all workers, so the master starts it, once."""
    global _receiver
    os.makedirs(_metrics_dir, exist_ok=True)
    _clear_metrics()
    from dicomrst.serving import start_receiver_process

    _receiver = start_receiver_process(_config, os.environ.get("DICOMRST_CONFIG"))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    # A dead worker's gauges (associations open, moves in flight) must not count any more.
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    from dicomrst.serving import stop_receiver_process

    # Workers have finished their requests by now (graceful_timeout); the receiver drains last.
    stop_receiver_process(_receiver, 30)
    _clear_metrics()
    try:
        os.rmdir(_metrics_dir)  # only when empty: it may be a folder the operator named
    except OSError:
        pass


def _clear_metrics():
    # Only prometheus_client's own files: the folder may be one the operator named.
    for name in glob.glob(os.path.join(_metrics_dir, "*.db")):
        os.unlink(name)
