"""Artifact store: atomic content-addressed blobs, JSON-only index, corruption, gc, leases."""

from __future__ import annotations

import os
import pickle
import sqlite3
import stat
import subprocess
import sys

import pytest

from pipeline.hashing import hash_bytes
from pipeline.store import ArtifactStore, CorruptBlob


def test_blob_roundtrip_is_content_addressed_and_read_only(artifacts):
    store = ArtifactStore(artifacts)
    ref = store.put_blob(b"hello engine", "engine")
    assert ref == {"digest": hash_bytes(b"hello engine"), "bytes": 12}
    path = store.blob_path(ref["digest"])
    assert not (path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    assert store.read_blob(ref["digest"]) == b"hello engine"
    meta = store.read_json(store.blob_manifest_path(ref["digest"]))
    assert meta["kind"] == "engine" and meta["bytes"] == 12  # a manifest beside each artifact
    assert store.put_blob(b"hello engine", "engine") == ref  # idempotent
    assert list((artifacts / "tmp").iterdir()) == []


def test_corrupt_blob_is_detected_and_never_served(artifacts):
    store = ArtifactStore(artifacts)
    ref = store.put_blob(b"A" * 1000, "engine")
    path = store.blob_path(ref["digest"])
    os.chmod(path, 0o644)
    path.write_bytes(b"B" * 1000)
    with pytest.raises(CorruptBlob):
        store.read_blob(ref["digest"])
    assert not path.exists()  # quarantined
    assert list((artifacts / "corrupt").iterdir())
    assert not store.verify_blob(ref["digest"])
    # a fresh store (new process) re-hashes too
    ref2 = store.put_blob(b"C" * 10, "x")
    p2 = store.blob_path(ref2["digest"])
    os.chmod(p2, 0o644)
    p2.write_bytes(b"D" * 10)
    assert not ArtifactStore(artifacts).verify_blob(ref2["digest"])


def test_index_holds_json_only_and_refuses_pickles(artifacts):
    store = ArtifactStore(artifacts)
    manifest = {"stage": "optimize", "key": "k" * 64, "outputs": {}, "meta": {"x": [1, 2]}}
    store.put_manifest(manifest)
    assert store.get_manifest("optimize", "k" * 64) == manifest
    store.close()
    db = sqlite3.connect(artifacts / "index" / "cache.db")
    modes = {row[0] for row in db.execute("SELECT mode FROM Cache")}
    assert modes <= {1, 3}  # MODE_RAW / MODE_TEXT: JSON text, never MODE_PICKLE (4)
    # someone plants a pickle in the index: it is refused, and the manifest file answers instead
    payload = pickle.dumps({"evil": True})
    db.execute("UPDATE Cache SET value = ?, mode = 4", (payload,))
    db.commit()
    db.close()
    store = ArtifactStore(artifacts)
    assert store.get_manifest("optimize", "k" * 64) == manifest


def test_manifest_files_are_authoritative_when_the_index_is_lost(artifacts, tmp_path):
    store = ArtifactStore(artifacts)
    store.put_manifest({"stage": "parse", "key": "a" * 64, "outputs": {}})
    store.close()
    # another host's index (or a wiped one) falls back to keys/*.json
    other = ArtifactStore(artifacts, index_dir=tmp_path / "local-index")
    assert other.get_manifest("parse", "a" * 64)["key"] == "a" * 64


def _run_holding_lease(artifacts, digest):
    code = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from pipeline.store import ArtifactStore\n"
        "s = ArtifactStore(%r); l = s.lease('test'); l.claim(%r)\n"
        "print('ready', flush=True); time.sleep(60)\n"
    ) % (str(__import__('pathlib').Path(__file__).resolve().parents[2]), str(artifacts), digest)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_gc_removes_unreferenced_blobs_but_not_claimed_or_referenced(artifacts):
    store = ArtifactStore(artifacts)
    kept = store.put_blob(b"referenced", "engine")
    store.put_manifest({"stage": "optimize", "key": "b" * 64, "outputs": {"engine": kept}})
    orphan = store.put_blob(b"orphan", "engine")
    claimed = store.put_blob(b"claimed by a running build", "engine")
    holder = _run_holding_lease(artifacts, claimed["digest"])
    try:
        report = store.gc(prune_manifests=False)
        assert report["removed_blobs"] == 1 and report["live_builds"] == 1
        assert store.verify_blob(kept["digest"]) and store.verify_blob(claimed["digest"])
        assert not store.blob_path(orphan["digest"]).exists()
        assert not store.blob_manifest_path(orphan["digest"]).exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its lease is stale and no longer protects anything
    report = store.gc(prune_manifests=False)
    assert report["stale_leases"] == 1 and report["removed_blobs"] == 1
    assert not store.blob_path(claimed["digest"]).exists()
    assert store.verify_blob(kept["digest"])


def test_gc_prunes_manifests_no_config_uses(artifacts, tmp_path):
    store = ArtifactStore(artifacts)
    live = store.put_blob(b"live", "engine")
    old = store.put_blob(b"superseded", "engine")
    store.put_manifest({"stage": "optimize", "key": "c" * 64, "outputs": {"engine": live}})
    store.put_manifest({"stage": "optimize", "key": "d" * 64, "outputs": {"engine": old}})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("x")
    store.update_run("cid", lambda r: {"config": str(cfg), "stages": {"optimize": {"key": "c" * 64}}})
    assert store.gc(dry_run=True)["pruned_manifests"] == 0  # too young: a build may be recording its run
    dry = store.gc(dry_run=True, grace=0)
    assert dry["pruned_manifests"] == 1 and dry["removed_blobs"] == 0 and store.verify_blob(old["digest"])
    report = store.gc(grace=0)
    assert report["pruned_manifests"] == 1 and report["removed_blobs"] == 1
    assert store.verify_blob(live["digest"]) and not store.blob_path(old["digest"]).exists()


def test_temp_files_of_dead_writers_are_swept(artifacts):
    store = ArtifactStore(artifacts)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    from pipeline.locks import HOST

    stale = artifacts / "tmp" / f"{HOST}-{proc.pid}-abcdef.tmp"
    stale.write_bytes(b"partial")
    mine = store._tmp()
    mine.write_bytes(b"in progress")
    assert store.sweep_tmp() == 1
    assert not stale.exists() and mine.exists()


MODES = """
import os, stat, sys
from pathlib import Path
os.umask(int(sys.argv[2], 8))
from pipeline.store import ArtifactStore
from converter.engine import store_engine
root = Path(sys.argv[1])
store = ArtifactStore(root / "store")
ref = store.put_blob(b"engine bytes", "engine")
store.place_blob(ref["digest"], root / "out" / "placed.engine")
store_engine(b"engine bytes", root / "out" / "converted.plan")
for p in (store.blob_path(ref["digest"]), root / "out" / "placed.engine", root / "out" / "converted.plan",
          root / "out" / "converted.plan.json"):
    print(p.name, oct(stat.S_IMODE(p.stat().st_mode)))
"""


@pytest.mark.parametrize("umask, writable, blob", [("022", "0o644", "0o444"), ("027", "0o640", "0o440"),
                                                    ("002", "0o664", "0o444")])
def test_plan_files_placed_engines_and_blobs_follow_one_umask_rule(tmp_path, umask, writable, blob):
    """``tf2trt convert``'s .plan (and its .json) and a placed engine are 0o666 & ~umask; a store blob the same,
    minus the write bits (immutable)."""
    from conftest import REPO

    res = subprocess.run([sys.executable, "-c", MODES, str(tmp_path), umask], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert res.returncode == 0, res.stderr
    modes = dict(line.split() for line in res.stdout.splitlines())
    (blob_name,) = [n for n in modes if n not in ("placed.engine", "converted.plan", "converted.plan.json")]
    assert modes == {blob_name: blob, "placed.engine": writable, "converted.plan": writable,
                     "converted.plan.json": writable}


def test_a_new_store_outside_the_project_is_warned_about(tmp_path):
    from pipeline.store import new_store_warning, project_root

    proj = tmp_path / "proj"
    (proj / "configs").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    cfg = proj / "configs" / "m.yaml"
    assert project_root(cfg.parent) == proj
    elsewhere = tmp_path / "elsewhere" / "artifacts"
    text = new_store_warning(elsewhere, [cfg])
    assert text and str(elsewhere) in text and str(proj) in text and "every stage runs" in text
    assert "--artifacts DIR" in text  # the project has no store yet: how to choose one
    ArtifactStore(proj / "artifacts")
    text = new_store_warning(elsewhere, [cfg])
    assert f"--artifacts {proj / 'artifacts'}" in text  # names the project's own store
    assert new_store_warning(proj / "artifacts", [cfg]) is None  # exists
    assert new_store_warning(proj / "other-store", [cfg]) is None  # new, but inside the project
    ArtifactStore(elsewhere)
    assert new_store_warning(elsewhere, [cfg]) is None  # not new any more
