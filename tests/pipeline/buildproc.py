"""`python buildproc.py CONFIG ARTIFACTS`: one build on the fake converter, no Prefect (a test helper)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fakes import FakeBackend  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.stages import StageContext, run_build  # noqa: E402
from pipeline.store import ArtifactStore  # noqa: E402

if __name__ == "__main__":
    ctx = StageContext(load_config(sys.argv[1]), ArtifactStore(sys.argv[2]), FakeBackend())
    summary = run_build(ctx)
    print(json.dumps({s["name"]: s["status"] for s in summary["stages"]}), flush=True)
