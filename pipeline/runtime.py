"""Where Prefect runs: an existing server, our own local server, or embedded ephemeral mode.

Order of preference for ``build``:

1. ``PREFECT_API_URL`` when set (a team server, or ``tf2trt dashboard``'s).
2. A server started by ``tf2trt dashboard`` / ``tf2trt serve`` on this machine
   (recorded in ``$TF2TRT_STATE_DIR/server.json``) when it answers.
3. Prefect's ephemeral mode.  Only one process at a time may own the default
   SQLite database (several processes on one ephemeral database report
   "database is locked"); we take a ``flock`` on it.  A concurrent build waits
   for it (``$TF2TRT_PREFECT_DB_WAIT`` seconds, default 20: long enough for the
   dashboard replay of a cached build), then records its run in a named,
   per-user fallback database (``$TF2TRT_STATE_DIR/prefect-fallback-N.db``,
   kept, never a temporary copy) and says so on one line that names it and
   how to view it.

Everything here must run *before* ``import prefect``: Prefect reads its
settings from the environment once, at import.

Servers we start die with the process that started them: each runs in its own
process group (stopped as a group, by PID) with a parent-death signal
(``prctl(PR_SET_DEATHSIG, SIGTERM)`` on Linux, set in the child before exec),
so a ``tf2trt dashboard`` killed with ``kill -9`` takes its server along.
Where that cannot work (another OS, a server started by an older tf2trt) the
next ``dashboard``/``serve`` start finds the record of a server whose owner is
dead and stops that server — only if its PID still belongs to the process
that was recorded (same start time), never a stranger that reused the PID.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .locks import HOST, FileLock, pid_alive, process_start

log = logging.getLogger(__name__)

_held: list[FileLock] = []


def state_dir() -> Path:
    base = os.environ.get("TF2TRT_STATE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tf2trt")
    p = Path(base)
    p.mkdir(parents=True, exist_ok=True)
    return p


def quiet_defaults(verbose: bool = False) -> None:
    """Prefect settings that a CLI run wants (set only where the user has not)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_CLI_PROMPT", "false")
    if not verbose:
        # Stage logs still reach the Prefect API (the dashboard); the terminal gets our table.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as resp:
            return resp.status == 200
    except Exception:  # noqa: BLE001
        return False


def recorded_server() -> str | None:
    """The API URL of a local server started by ``tf2trt dashboard``/``serve``, if it is up."""
    rec_path = state_dir() / "server.json"
    try:
        rec = json.loads(rec_path.read_text())
    except (OSError, ValueError):
        return None
    if not pid_alive(int(rec.get("pid", 0))) or not healthy(rec["api_url"], timeout=1.0):
        return None
    return rec["api_url"]


def _default_db_path() -> Path | None:
    for var in ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL"):
        if os.environ.get(var):
            return None  # configured by the user (maybe PostgreSQL): leave it alone
    home = Path(os.path.expanduser(os.environ.get("PREFECT_HOME") or "~/.prefect"))
    home.mkdir(parents=True, exist_ok=True)
    return home / "prefect.db"


#: seconds a build waits for another tf2trt process to release the default Prefect database
DB_WAIT_ENV = "TF2TRT_PREFECT_DB_WAIT"
DEFAULT_DB_WAIT = 20.0
#: fallback databases tried in turn (each has its own lock): as many concurrent builds as this find one
FALLBACK_SLOTS = 8


def _db_wait() -> float:
    try:
        return max(0.0, float(os.environ.get(DB_WAIT_ENV, DEFAULT_DB_WAIT)))
    except ValueError:
        return DEFAULT_DB_WAIT


def _db_lock(db: Path) -> FileLock:
    return FileLock(db.with_name(db.name + ".tf2trt.lock"))


def fallback_databases() -> list[Path]:
    """The named per-user databases a build records in while the default one is busy."""
    return [state_dir() / f"prefect-fallback-{n}.db" for n in range(1, FALLBACK_SLOTS + 1)]


def _wait_for(lock: FileLock, seconds: float, on_wait=None) -> bool:
    """Take ``lock``, polling for at most ``seconds``; ``on_wait(holder)`` is told once that we wait."""
    if lock.try_acquire():
        return True
    if seconds <= 0:
        return False
    if on_wait is not None:
        on_wait(lock.describe_holder())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if lock.try_acquire():
            return True
    return False


def view_command(db: Path) -> str:
    """How to open a fallback database's runs in the UI."""
    return f"PREFECT_SERVER_DATABASE_CONNECTION_URL=sqlite+aiosqlite:///{db} tf2trt dashboard --port 4201"


def prepare_prefect(verbose: bool = False, early_start: bool = True, notify=None) -> str:
    """Point Prefect at a server or a database this process may use.  Returns the mode.

    ``notify(text)`` gets what the user must know (the wait for the database, a fallback database);
    without it those lines are logged at WARNING.
    """
    def say(text: str) -> None:
        if notify is not None:
            notify(text)
        else:
            log.warning("%s", text)

    quiet_defaults(verbose)
    if os.environ.get("PREFECT_API_URL"):
        return "server:" + os.environ["PREFECT_API_URL"]
    url = recorded_server()
    if url:
        os.environ["PREFECT_API_URL"] = url
        return "server:" + url
    primary = _default_db_path()
    if primary is None:
        mode = "ephemeral:configured-database"
    else:
        wait = _db_wait()
        lock = _db_lock(primary)
        if _wait_for(lock, wait, lambda who: say(f"the Prefect database {primary} is in use by {who}; "
                                                  f"waiting up to {wait:g} s for it")):
            _held.append(lock)  # held until this process exits; the kernel drops it if we die
            mode = f"ephemeral:{primary}"
        else:
            fallback = next((db for db in fallback_databases() if _take(_db_lock(db))), None)
            if fallback is None:
                raise RuntimeError(f"the Prefect database {primary} and all {FALLBACK_SLOTS} fallback databases in "
                                   f"{state_dir()} are in use by other tf2trt builds; run `tf2trt dashboard` so "
                                   f"that concurrent builds share one server, or set PREFECT_API_URL")
            os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{fallback}"
            say(f"the Prefect database {primary} is still in use by {lock.describe_holder()}; this run is "
                f"recorded in {fallback} instead (it will not appear on the default dashboard; to see it: "
                f"{view_command(fallback)}; keep `tf2trt dashboard` running to record concurrent builds in one place)")
            mode = f"ephemeral:{fallback} (fallback database)"
    if early_start:
        _start_ephemeral()
    return mode


def _take(lock: FileLock) -> bool:
    if lock.try_acquire():
        _held.append(lock)
        return True
    return False


_ephemeral: list["ServerProcess"] = []


_PR_SET_PDEATHSIG = 1


def _die_with(parent: int):
    """A ``preexec_fn``: the child gets SIGTERM when ``parent`` dies (Linux; a no-op elsewhere).

    Runs in the child between fork and exec.  The signal follows the *thread* that forked, so servers
    are started from the main thread.  If the parent died before the prctl took effect, the child
    stops itself at once instead of running on unowned.
    """
    def preexec() -> None:
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _set_pdeathsig() -> None:  # kept for callers of the old name: runs in the child before exec
    _die_with(os.getppid())()


def _start_ephemeral(database: Path | None = None) -> None:
    """Start Prefect's ephemeral API server now, in the background.

    This is the server Prefect itself would start on first use (same uvicorn
    app, UI off, ephemeral services), started before our own imports so the
    two overlap, and without importing ``prefect.server`` into this process
    (about 6 s here).  It dies with us (PR_SET_PDEATHSIG) and at exit.
    """
    import importlib.util

    spec = importlib.util.find_spec("prefect")
    app_dir = str(Path(spec.origin).parent.parent)
    port = free_port()
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT_SERVER_UI_ENABLED": "false",
           "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    env.pop("PREFECT_API_URL", None)
    if database is not None:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{database}"
    log_path = Path(tempfile.gettempdir()) / f"tf2trt-prefect-ephemeral-{os.getpid()}.log"
    out = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "--factory", "prefect.server.api.server:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"],
        env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=_die_with(os.getpid()))
    out.close()
    server = ServerProcess(proc.pid, port, f"http://127.0.0.1:{port}", log_path, proc)
    _ephemeral.append(server)
    os.environ["PREFECT_API_URL"] = server.api_url

    def stop():
        server.stop(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            log_path.unlink()

    atexit.register(stop)


def wait_ready(timeout: float = 120.0) -> None:
    """Block until the ephemeral server started by :func:`prepare_prefect` answers."""
    for server in _ephemeral:
        deadline = time.monotonic() + timeout
        while not healthy(server.api_url, timeout=1.0):
            if server.proc is not None and server.proc.poll() is not None:
                raise RuntimeError(f"the Prefect API server exited ({server.proc.returncode}); "
                                   f"see {server.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect API server did not start within {timeout:.0f} s")
            time.sleep(0.1)


def no_heartbeats():
    """Prefect settings context without flow-run heartbeats.

    With heartbeats on, every flow run ends by joining a heartbeat thread that
    sleeps in 1 s steps (about 1 s per run).  The setting cannot be unset from
    the environment (it must be >= 30 or None), so it is set here, in-process.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    pid: int
    port: int
    url: str  # the UI/base URL
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server we started: its process group, by PID."""
        if self.proc is not None and self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None:
                if self.proc.poll() is not None:
                    break
            elif not pid_alive(self.pid):
                break
            time.sleep(0.2)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            if self.proc is not None:
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # any straggling children


def start_server(port: int | None = None, host: str = "127.0.0.1", env: dict | None = None,
                 log_path: Path | None = None, timeout: float = 120.0, ui: bool = True) -> ServerProcess:
    """``prefect server start`` on a loopback port, waiting until /api/health answers.

    ``PREFECT_UI_API_URL`` is set to this server's /api so that the UI on a
    non-default port does not call :4200.
    """
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    child_env = {**os.environ, **(env or {})}
    child_env.pop("PREFECT_API_URL", None)
    child_env.update({
        "PREFECT_UI_API_URL": f"{url}/api",
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "true" if ui else "false",
        "PREFECT_CLI_PROMPT": "false",
    })
    log_path = Path(log_path) if log_path else (state_dir() / f"server-{port}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab")
    # its own process group (stopped as a group), and it dies with us even on kill -9 (see the module docstring)
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", host,
                             "--port", str(port)], env=child_env, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with(os.getpid()))
    out.close()
    server = ServerProcess(proc.pid, port, url, log_path, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {proc.returncode}; see {log_path}")
        if healthy(server.api_url):
            return server
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"prefect server did not answer on {url} within {timeout:.0f} s; see {log_path}")


def record_server(server: ServerProcess) -> Path:
    """Note the server (and who owns it, with start times to tell reused PIDs apart) in ``server.json``."""
    path = state_dir() / "server.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": server.pid, "port": server.port, "url": server.url,
                               "api_url": server.api_url, "owner": os.getpid(), "host": HOST,
                               "owner_start": process_start(os.getpid()),
                               "server_start": process_start(server.pid)}))
    os.replace(tmp, path)
    return path


def _same_process(pid: int, recorded_start) -> bool:
    """Whether ``pid`` is alive and is the process recorded (same start time where one was recorded)."""
    if not pid_alive(pid):
        return False
    if recorded_start is None:
        return True
    now = process_start(pid)
    return now is None or now == recorded_start


def _looks_like_prefect_server(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: the start-time check is all there is
    return b"prefect" in b" ".join(argv) and (b"server" in argv or any(b"prefect.server" in a for a in argv))


def reap_orphaned_server(timeout: float = 15.0) -> str | None:
    """Stop a recorded server whose owner (``tf2trt dashboard``/``serve``) is dead; returns what was done.

    The record is dropped when its owner is dead.  The server itself is stopped (its process group,
    SIGTERM then SIGKILL) only while its PID still belongs to the process recorded — same start time,
    and a Prefect server by its command line — so a PID reused by someone else is never signalled.
    """
    path = state_dir() / "server.json"
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if rec.get("host", HOST) != HOST:
        return None
    owner = int(rec.get("owner") or 0)
    if owner and _same_process(owner, rec.get("owner_start")):
        return None  # a live dashboard or serve owns it
    pid = int(rec.get("pid") or 0)
    done = "forgot the record of a Prefect server whose owner is gone"
    if pid and _same_process(pid, rec.get("server_start")) and _looks_like_prefect_server(pid):
        log.warning("the Prefect server PID %s on port %s outlived the tf2trt process %s that started it; "
                    "stopping it", pid, rec.get("port"), owner or "?")
        if _pgid(pid) == pid:  # its own process group (as start_server makes it): stop the whole group
            ServerProcess(pid, int(rec.get("port") or 0), rec.get("url", ""), Path(os.devnull)).stop(timeout=timeout)
        else:
            _kill_pid(pid, timeout)
        done = f"stopped the orphaned Prefect server PID {pid} (its owner {owner or '?'} had died)"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == rec.get("pid"):
            path.unlink()
    return done


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _kill_pid(pid: int, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def forget_server(server: ServerProcess) -> None:
    path = state_dir() / "server.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == server.pid:
            path.unlink()
