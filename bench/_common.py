"""Helpers shared by the benchmark scripts: child processes measured with wait4, machine facts, reports."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
DOCS = REPO / "docs" / "bench.md"

GiB = 1 << 30
MiB = 1 << 20

OOM_MARKERS = ("bad_alloc", "memoryerror", "out of memory", "cannot allocate memory", "resource exhausted",
               "resourceexhausted", "failed to allocate", "oom-kill", "std::length_error")


@dataclass
class ChildRun:
    argv: list[str]
    returncode: int
    wall_s: float
    peak_rss_bytes: int  #: ru_maxrss of the child (and its waited-for descendants), from wait4
    user_s: float
    sys_s: float
    stdout: str
    stderr: str
    timed_out: bool = False
    mem_cap_bytes: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def vm_peak_bytes(self) -> int | None:
        """Largest VmPeak (peak address space) sampled from /proc while the child ran."""
        return self.extra.get("vm_peak_bytes")

    def near_cap(self, fraction: float = 0.9) -> bool:
        return bool(self.mem_cap_bytes and self.vm_peak_bytes and self.vm_peak_bytes >= fraction * self.mem_cap_bytes)

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode < 0 else None

    def last_json(self) -> dict | None:
        """The last stdout line that parses as a JSON object."""
        for line in reversed(self.stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        return None

    def looks_oom(self) -> bool:
        text = self.stderr[-20000:].lower() + self.stdout[-5000:].lower()
        if any(m in text for m in OOM_MARKERS):
            return True
        # SIGKILL we did not send ourselves: the kernel's OOM killer
        if self.signal == signal.SIGKILL and not self.timed_out:
            return True
        # under RLIMIT_AS a failed allocation can surface as a crash (SIGSEGV/SIGABRT/SIGBUS) in C++ code
        return self.returncode != 0 and self.near_cap()


def run_measured(argv: list[str], *, cwd: str | Path | None = None, env: dict | None = None,
                 mem_cap_bytes: int | None = None, timeout_s: float | None = None,
                 log_prefix: Path | None = None) -> ChildRun:
    """Run ``argv`` to completion and return its exit status, wall time and rusage (peak RSS) from ``os.wait4``.

    ``mem_cap_bytes`` sets RLIMIT_AS (address space) in the child before exec.  stdout/stderr go to files
    (``log_prefix``.stdout/.stderr when given) so that nothing blocks while we sit in wait4.
    """
    import tempfile

    def preexec():
        os.setsid()  # own process group: a timeout kills the whole group
        if mem_cap_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (mem_cap_bytes, mem_cap_bytes))

    if log_prefix is not None:
        log_prefix.parent.mkdir(parents=True, exist_ok=True)
        out_f = open(str(log_prefix) + ".stdout", "w+b")
        err_f = open(str(log_prefix) + ".stderr", "w+b")
    else:
        out_f = tempfile.TemporaryFile()
        err_f = tempfile.TemporaryFile()
    timed_out = threading.Event()
    with out_f, err_f:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f,
                                preexec_fn=preexec)
        sampled: dict[str, int] = {}
        done = threading.Event()

        def sample():
            status_file = f"/proc/{proc.pid}/status"
            while not done.is_set():
                try:
                    with open(status_file) as f:
                        for line in f:
                            if line.startswith(("VmPeak:", "VmHWM:")):
                                key = "vm_peak_bytes" if line.startswith("VmPeak") else "vm_hwm_bytes"
                                sampled[key] = max(sampled.get(key, 0), int(line.split()[1]) * 1024)
                except (OSError, ValueError):
                    pass
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = None
        if timeout_s:
            def kill():
                timed_out.set()
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            timer = threading.Timer(timeout_s, kill)
            timer.daemon = True
            timer.start()
        while True:
            try:
                _, status, ru = os.wait4(proc.pid, 0)
                break
            except InterruptedError:
                continue
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        if timer is not None:
            timer.cancel()
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # wait4 reaped it; keep Popen from trying again
        out_f.seek(0)
        err_f.seek(0)
        stdout = out_f.read().decode(errors="replace")
        stderr = err_f.read().decode(errors="replace")
    return ChildRun(argv=list(argv), returncode=code, wall_s=wall, peak_rss_bytes=int(ru.ru_maxrss) * 1024,
                    user_s=ru.ru_utime, sys_s=ru.ru_stime, stdout=stdout, stderr=stderr,
                    timed_out=timed_out.is_set(), mem_cap_bytes=mem_cap_bytes, extra=dict(sampled))


def export_ref(ref: str, repo: Path = REPO) -> tuple[Path, dict]:
    """``git archive`` the converter package at ``ref`` into bench/.src/<sha>/ (the working tree is untouched)."""
    sha = subprocess.run(["git", "rev-parse", "--verify", ref + "^{commit}"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout.strip()
    dest = HERE / ".src" / sha
    if not (dest / "converter" / "__init__.py").exists():
        tmp = HERE / ".src" / (sha + ".tmp")
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", sha, "converter"], cwd=repo, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        subprocess.run(["rm", "-rf", str(dest)], check=True)
        os.replace(tmp, dest)
    return dest, {"source": f"git {ref}", "commit": sha, "dirty_converter_files": []}


def child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def machine_info() -> dict:
    info = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        info["cpu"] = m.group(1).strip() if m else platform.processor()
        flags = re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M)
        if flags:
            f = set(flags.group(1).split())
            info["cpu_simd"] = [x for x in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni") if x in f]
    except OSError:
        info["cpu"] = platform.processor()
    try:
        meminfo = Path("/proc/meminfo").read_text()
        total = int(re.search(r"MemTotal:\s+(\d+) kB", meminfo).group(1)) * 1024
        avail = int(re.search(r"MemAvailable:\s+(\d+) kB", meminfo).group(1)) * 1024
        info["mem_total_gib"] = round(total / GiB, 1)
        info["mem_available_gib_at_start"] = round(avail / GiB, 1)
    except (OSError, AttributeError):
        pass
    try:
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def git_info(src: Path) -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=src, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"source": str(src), "commit": None, "dirty": None}
    dirty = git("status", "--porcelain", "--", "converter")
    return {"source": str(src), "commit": commit, "dirty_converter_files": dirty.splitlines() if dirty else []}


def fmt_s(x: float | None) -> str:
    return "—" if x is None else (f"{x:.2f} s" if x < 100 else f"{x:.0f} s")


def fmt_mib(b: int | None) -> str:
    return "—" if b is None else f"{b / MiB:,.0f} MiB"


def fmt_ratio(peer, ours) -> str:
    if peer is None or ours is None or ours == 0:
        return "—"
    return f"{peer / ours:.2f}×"


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def write_results(name: str, data: dict, markdown: str) -> tuple[Path, Path]:
    """bench/results/<name>-<stamp>.{json,md} plus <name>-latest.{json,md}."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = timestamp()
    paths = []
    for suffix, text in ((".json", json.dumps(data, indent=2, default=str) + "\n"), (".md", markdown)):
        for stem in (f"{name}-{stamp}", f"{name}-latest"):
            p = RESULTS / (stem + suffix)
            p.write_text(text)
        paths.append(RESULTS / f"{name}-{stamp}{suffix}")
    return paths[0], paths[1]


def update_docs_section(section: str, markdown: str, path: Path = DOCS) -> None:
    """Replace the text between ``<!-- section:begin -->`` and ``<!-- section:end -->`` in docs/bench.md."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}")
        print(md_table(columns, rows))
        return
    table = Table(title=title)
    for i, c in enumerate(columns):
        table.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*r)
    Console(width=max(100, 30 * len(columns))).print(table)


def md_table(columns: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def which_python(default: str | None = None) -> str:
    return default or sys.executable
