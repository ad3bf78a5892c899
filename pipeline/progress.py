"""Live build progress for ``tf2trt build``: a ticking per-stage line on a terminal, plain lines elsewhere.

Stage events come from :data:`pipeline.stages.PROGRESS_HOOKS` (``start`` / ``end`` per config and stage).
On a terminal a rich status line names every running stage with its elapsed time, refreshed several times
a second (so a 60 s freeze visibly counts); when stderr is a pipe or a file (CI, cron) each event is one
plain, flushed line with the time since the process started, so a log shows where a build is at any moment.
"""

from __future__ import annotations

import os
import threading
import time

#: when this module was imported: a fallback start time where /proc is unavailable
_IMPORTED = time.time()


def process_started() -> float:
    """The epoch time this process started (interpreter start-up included), from /proc on Linux."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rpartition(")")[2].split()
        start_ticks = int(fields[19])  # field 22 of stat(5), counted after the command name
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED


def wall_seconds() -> float:
    """Seconds since this process started."""
    return max(0.0, time.time() - process_started())


class _Running:
    """The status line's renderable: re-evaluated on every refresh, so the timers tick."""

    def __init__(self, display: "BuildProgress"):
        self.display = display

    def __rich__(self) -> str:
        return self.display.status_text()


class BuildProgress:
    """A PROGRESS_HOOKS callable plus the display it drives (use as a context manager)."""

    def __init__(self, console, label: str = "building"):
        self.console = console
        self.label = label
        self.live = console.is_terminal
        self.running: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._status = None
        self.note = "starting Prefect…"

    # ---------------------------------------------------------------- display
    def __enter__(self) -> "BuildProgress":
        if self.live:
            self._status = self.console.status(_Running(self), spinner="dots", refresh_per_second=4)
            self._status.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)
            self._status = None

    def status_text(self) -> str:
        with self._lock:
            items = list(self.running.items())
        if not items:
            return self.note
        now = time.monotonic()
        parts = [f"{config}: {stage} ({now - t:.0f} s)" for (config, stage), t in items]
        return f"{self.label} " + ", ".join(parts)

    def say(self, text: str) -> None:
        """One line: printed above the live status on a terminal, or plainly (flushed) elsewhere."""
        if self.live:
            self.console.print(f"[dim]{text}[/]", highlight=False, soft_wrap=True)
        else:
            self.console.print(f"[{wall_seconds():7.1f} s] {text}", highlight=False, markup=False, soft_wrap=True)
            try:
                self.console.file.flush()
            except (AttributeError, OSError):
                pass

    def warn(self, text: str) -> None:
        """A line the user must not miss (e.g. the run goes to a fallback database): yellow on a terminal."""
        if self.live:
            from rich.markup import escape

            self.console.print(f"[yellow]{escape(text)}[/]", highlight=False, soft_wrap=True)
        else:
            self.say(text)

    # ---------------------------------------------------------------- hook
    def __call__(self, event: str, config: str, stage: str, info: str = "") -> None:
        key = (config, stage)
        with self._lock:
            if event == "start":
                self.running[key] = time.monotonic()
            else:
                self.running.pop(key, None)
                if not self.running:
                    self.note = "finishing"
        if event == "start":
            if not self.live:
                self.say(f"{config}: {stage} started")
        else:
            self.say(f"{config}: {stage} {info}".rstrip())
