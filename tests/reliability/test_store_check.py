"""`tf2trt store check [--repair]`: damage found, repaired so the next build rebuilds, exit 0 clean / 2 damaged."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from pipeline.config import load_config
from pipeline.locks import HOST
from pipeline.stages import StageContext, run_build
from pipeline.store import ArtifactStore
from pipeline.store_check import add_store_parser, check_store


def build(cfg, artifacts, fake) -> dict:
    store = ArtifactStore(artifacts)
    try:
        return run_build(StageContext(load_config(cfg), store, fake))
    finally:
        store.close()


def cli(argv: list[str], capsys) -> tuple[int, dict]:
    """The parser exactly as pipeline/cli.py wires it (``add_store_parser(sub, parents=[common])``)."""
    parser = argparse.ArgumentParser(prog="tf2trt")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command")
    add_store_parser(sub, parents=[common])
    args = parser.parse_args(argv)
    code = args.func(args)
    out = capsys.readouterr().out
    return code, (json.loads(out.strip().splitlines()[-1]) if "--json" in argv else {"text": out})


def _damage(artifacts, summary) -> dict:
    store = ArtifactStore(artifacts)
    manifests = {m["stage"]: m for m in store.iter_manifests()}
    # a corrupt engine blob, a missing snapshot blob, a garbage manifest, a stale index entry, a dead writer's temp
    engine = store.blob_path(summary["engine_digest"])
    os.chmod(engine, 0o644)
    engine.write_bytes(b"not the engine")
    snap = manifests["construct"]["outputs"]["snapshot"]["digest"]
    store.blob_path(snap).unlink()
    bogus = store.key_path("parse", "f" * 64)
    bogus.parent.mkdir(parents=True, exist_ok=True)
    bogus.write_text("{ truncated")
    stale = dict(manifests["freeze"], meta={"edited": True})
    store.index.set(f"freeze/{manifests['freeze']['key']}", stale)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (artifacts / "tmp" / f"{HOST}-{dead.pid}-abcdef012345.tmp").write_bytes(b"partial")
    store.close()
    return manifests


def test_check_finds_damage_and_repair_makes_the_next_build_rebuild(configs, artifacts, fake, capsys, probe):
    cfg = configs.write()
    summary = build(cfg, artifacts, fake)
    code, clean = cli(["store", "check", "--artifacts", str(artifacts), "--json"], capsys)
    assert code == 0 and clean["ok"] and clean["findings"] == [], clean
    _damage(artifacts, summary)
    code, report = cli(["store", "check", "--artifacts", str(artifacts), "--json"], capsys)
    kinds = sorted(f["kind"] for f in report["findings"])
    assert code == 2 and not report["ok"], report
    for kind in ("corrupt blob", "manifest with a bad blob", "unreadable stage manifest", "stale index entry",
                 "orphan temp file"):
        assert kind in kinds, kinds
    assert (artifacts / "blobs" / summary["engine_digest"][:2] / summary["engine_digest"]).exists()  # check only
    code, repaired = cli(["store", "check", "--repair", "--artifacts", str(artifacts)], capsys)
    assert code == 0, repaired["text"]
    assert "→" in repaired["text"] and "OK" in repaired["text"]
    code, after = cli(["store", "check", "--artifacts", str(artifacts), "--json"], capsys)
    assert code == 0 and after["damage"] == 0 and after["leftovers_remaining"] == 0, after
    rebuilt = build(cfg, artifacts, fake)
    statuses = {s["name"]: s["status"] for s in rebuilt["stages"]}
    assert rebuilt["ok"] and statuses["construct"] == "built" and statuses["optimize"] == "built", statuses
    assert statuses["freeze"] == "cached" and statuses["parse"] == "cached"
    assert rebuilt["engine_digest"] == summary["engine_digest"]
    assert check_store(artifacts)["exit_code"] == 0
    damaged = report["damage"]
    probe("store check", "a corrupt engine blob, a deleted snapshot blob, a truncated stage manifest, an index entry "
          "edited to differ from its manifest file, a dead writer's temp file; then `store check`, `--repair`, a build",
          f"check: exit 2, {damaged} damage finding(s) among {len(kinds)} ({', '.join(sorted(set(kinds)))}); "
          f"--repair: exit 0; the next "
          f"build: {', '.join(f'{k} {v}' for k, v in statuses.items())}, same engine digest; store check clean",
          before="(no store check; the index entry was served as is)")


def test_check_on_a_store_whose_index_is_garbage(configs, artifacts, fake, capsys, probe):
    cfg = configs.write()
    build(cfg, artifacts, fake)
    for f in (artifacts / "index").iterdir():
        f.write_bytes(b"garbage" * 100)
    code, report = cli(["store", "check", "--artifacts", str(artifacts), "--json"], capsys)
    assert code == 2 and [f["kind"] for f in report["findings"]] == ["unreadable index"], report
    code, _ = cli(["store", "check", "--repair", "--artifacts", str(artifacts), "--json"], capsys)
    assert code == 0
    again = build(cfg, artifacts, fake)  # the index is rebuilt from the manifest files
    assert again["ok"] and {s["status"] for s in again["stages"]} == {"cached"}, again
    probe("store check", "every file of the diskcache index overwritten with garbage",
          "check: exit 2, `unreadable index`; --repair moves it aside; the next build is all cached",
          before="(no store check)")
