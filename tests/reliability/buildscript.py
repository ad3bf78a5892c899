"""`python buildscript.py CONFIG ARTIFACTS`: one build on the fake converter, no Prefect, with faults (a test helper).

Environment:

* ``RELIABILITY_FAULT``: ``calls=write,pwrite;under=DIR[,DIR];err=ENOSPC`` makes those calls fail on files under DIR;
* ``RELIABILITY_SLOW_PLACE``: seconds to sleep in the fsync of the engine's temp file beside the output
  (after noting ``place`` in ``$TF2TRT_FAKE_LOG``), so a test can kill the build mid-placement;
* ``RELIABILITY_REBUILD=1``: build again in the same process with the faults lifted.

Prints one JSON line: exit code, ok, error, stage statuses and reasons, lock files this process could not
take afterwards (a leaked lock would be one), temp files left in the store, and the rebuild's summary.
"""

import errno
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "tests" / "pipeline"))
sys.path.insert(0, str(HERE.parents[1]))

from fakes import FakeBackend  # noqa: E402
from faults import Faults, fd_path, under  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.locks import FileLock  # noqa: E402
from pipeline.stages import StageContext, run_build  # noqa: E402
from pipeline.store import ArtifactStore  # noqa: E402


def _faults() -> Faults | None:
    spec = os.environ.get("RELIABILITY_FAULT")
    if not spec:
        return None
    parts = dict(item.split("=", 1) for item in spec.split(";"))
    return Faults(tuple(parts["calls"].split(",")), under(*parts["under"].split(",")),
                  getattr(errno, parts.get("err", "ENOSPC"))).install()


def _slow_place() -> None:
    seconds = float(os.environ.get("RELIABILITY_SLOW_PLACE") or 0)
    if not seconds:
        return
    real = os.fsync

    def fsync(fd):
        if ".tf2trt-" in fd_path(fd):
            log = os.environ.get("TF2TRT_FAKE_LOG")
            if log:
                with open(log, "a") as fh:
                    fh.write(f"{os.getpid()} place\n")
            time.sleep(seconds)
        return real(fd)

    os.fsync = fsync


def _summary(summary: dict) -> dict:
    return {"exit_code": summary["exit_code"], "ok": summary["ok"], "error": summary.get("error"),
            "engine": summary["engine"], "stages": {s["name"]: s["status"] for s in summary["stages"]},
            "reasons": {s["name"]: s["reason"] for s in summary["stages"]}}


def main() -> None:
    cfg, root = sys.argv[1], Path(sys.argv[2])
    faults = _faults()
    _slow_place()
    store = ArtifactStore(root)
    start = time.monotonic()
    out = _summary(run_build(StageContext(load_config(cfg), store, FakeBackend())))
    out["seconds"] = round(time.monotonic() - start, 3)
    if faults is not None:
        faults.enabled = False
        out["fault_hits"] = len(faults.hits)
    held = []
    for path in sorted((root / "locks").glob("*.lock")):
        probe = FileLock(path)
        if probe.try_acquire():
            probe.release()
        else:
            held.append(path.name)
    out["locks_held"] = held
    out["tmp"] = sorted(p.name for p in (root / "tmp").iterdir())
    if os.environ.get("RELIABILITY_REBUILD") == "1":
        out["rebuild"] = _summary(run_build(StageContext(load_config(cfg), store, FakeBackend())))
    store.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
