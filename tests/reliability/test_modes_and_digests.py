"""One permission rule (0o666 & ~umask; store blobs then read-only) and engine digests checked on load."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pipeline.config import load_config
from pipeline.stages import StageContext, run_build
from pipeline.store import ArtifactStore


@pytest.fixture
def umask():
    saved = os.umask(0o022)
    os.umask(saved)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(saved)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_follow_the_umask(configs, artifacts, fake, tmp_path, umask, mask, probe):
    from converter.engine import store_engine

    umask(mask)
    cfg = configs.write()
    store = ArtifactStore(artifacts)
    summary = run_build(StageContext(load_config(cfg), store, fake))
    store.close()
    writable = 0o666 & ~mask
    blob = store.blob_path(summary["engine_digest"])
    assert mode(blob) == writable & ~0o222, oct(mode(blob))
    assert mode(store.blob_manifest_path(summary["engine_digest"])) == writable
    placed = cfg.parent / "out" / "m.engine"
    assert mode(placed) == writable and mode(placed.with_name("m.engine.json")) == writable
    converted = store_engine(b"engine", tmp_path / "convert" / "m.plan", {})
    assert mode(converted) == writable and mode(converted.with_name("m.plan.json")) == writable
    probe("file modes", f"umask {mask:04o}: a build (blob, manifest, placed engine, sidecar) and `tf2trt convert`'s "
          "store_engine", f"blob {mode(blob):04o}, placed engine {mode(placed):04o}, convert's engine "
          f"{mode(converted):04o}, sidecars {writable:04o}",
          before="blob 0444, placed engine 0644 and manifests 0644 whatever the umask; convert's engine 0600 "
                 "(mkstemp)")


def test_load_engine_checks_the_digest_its_sidecar_records(tmp_path, probe):
    from converter.engine import DamagedEngineError, load_engine, store_engine

    path = store_engine(b"\x01engine-bytes-v1", tmp_path / "m.plan", {"layers": 3})
    data, meta = load_engine(path)
    assert data == b"\x01engine-bytes-v1" and len(meta["digest"]) == 64
    path.write_bytes(b"\x01engine-bytes-v2")  # same size, other bytes
    with pytest.raises(DamagedEngineError) as info:
        load_engine(path)
    assert info.value.exit_code == 2 and "does not match the digest" in info.value.message
    path.write_bytes(b"\x01engine")  # truncated
    with pytest.raises(DamagedEngineError, match="records 16"):
        load_engine(path)
    path.with_name("m.plan.json").unlink()
    assert load_engine(path)[1] == {}  # no sidecar: nothing to check against
    probe("engines", "`converter.load_engine` of an engine edited (same size) and truncated after store_engine",
          f"DamagedEngineError (exit 2): `{info.value.message.split(': it hashes')[0].replace(str(tmp_path), '…')}: "
          "it hashes to …, the metadata records …`; a size mismatch is named too; without a sidecar it loads "
          "unchecked", before="returned the wrong bytes silently")


def test_load_engine_checks_a_build_placed_engine(configs, artifacts, fake, probe):
    from converter.engine import DamagedEngineError, load_engine

    cfg = configs.write()
    store = ArtifactStore(artifacts)
    summary = run_build(StageContext(load_config(cfg), store, fake))
    store.close()
    placed = cfg.parent / "out" / "m.engine"
    data, meta = load_engine(placed)
    assert meta["digest"] == summary["engine_digest"] and meta["placed_by"] == "tf2trt build"
    placed.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    with pytest.raises(DamagedEngineError):
        load_engine(placed)
    sidecar = json.loads(placed.with_name("m.engine.json").read_text())
    assert sidecar["bytes"] == len(data)
    probe("engines", "`load_engine` of an engine placed by `tf2trt build`, then one byte flipped",
          "loads with its manifest (same blake3 digest as the store's); the flipped byte raises DamagedEngineError",
          before="loaded without any check")
