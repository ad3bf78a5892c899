"""Step 4: builder settings, engine builds, atomic storage."""

from __future__ import annotations

import json
import logging

import pytest

from converter import trt as trtshim
from converter.construct import construct
from converter.engine import (BuilderSettings, EngineBuildError, available_targets, engine_metadata, load_engine,
                              optimize_network, store_engine)
from converter.errors import ModelError
from converter.freeze import freeze
from converter.graph import parse
from converter.snapshot import Snapshot

from .models import small_cnn


@pytest.fixture(scope="module")
def net():
    return construct(parse(freeze(small_cnn())))


def test_settings_validate():
    with pytest.raises(ValueError, match="opt_level"):
        BuilderSettings(opt_level=9)
    with pytest.raises(ValueError, match="workspace"):
        BuilderSettings(workspace=0)
    s = BuilderSettings(workspace=1 << 28, timing_cache="/tmp/x", targets=("sm86",))
    assert s.targets == ("SM86",)
    assert "timing_cache" not in s.cache_dict()  # the cache speeds builds up but does not change the engine


def test_build_from_network_and_from_snapshot(net, tmp_path):
    engine = optimize_network(net, BuilderSettings(opt_level=0))
    assert isinstance(engine, bytes) and len(engine) > 1000
    # a snapshot rebuilds the network without TensorFlow and builds an engine as well
    snap = Snapshot.load(_saved(net.snapshot, tmp_path))
    engine2 = optimize_network(snap, BuilderSettings(opt_level=0))
    assert len(engine2) > 1000


def _saved(snapshot, tmp_path):
    snapshot.save(tmp_path / "snap")
    return tmp_path / "snap"


@pytest.mark.skipif(not trtshim.gpu_present(), reason="the timing cache records GPU kernel timings: no GPU here")
def test_timing_cache_is_saved_and_reused(net, tmp_path):
    cache = tmp_path / "timing.cache"
    optimize_network(net, BuilderSettings(opt_level=0, timing_cache=str(cache)))
    assert cache.is_file() and cache.stat().st_size > 0
    optimize_network(net, BuilderSettings(opt_level=0, timing_cache=str(cache)))


@pytest.mark.skipif(trtshim.gpu_present(), reason="checks the CPU-only path")
def test_without_a_gpu_the_timing_cache_is_skipped_and_said_once(net, tmp_path, caplog):
    from converter import engine

    engine._say_once_no_timing_cache.cache_clear()
    cache = tmp_path / "timing.cache"
    with caplog.at_level(logging.INFO, logger="converter.engine"):
        for _ in range(2):
            assert len(optimize_network(net, BuilderSettings(opt_level=0, timing_cache=str(cache)))) > 1000
    assert not cache.exists()
    notes = [r for r in caplog.records if "timing cache is not used" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO  # shown with -v only


@pytest.mark.skipif(not available_targets(), reason=f"{trtshim.flavor()} cannot choose target compute capabilities")
def test_targets(net):
    # SM75 (Turing) has no FP32 GEMM in TensorRT-RTX, so use an Ampere target
    target = "SM86" if "SM86" in available_targets() else available_targets()[-1]
    assert len(optimize_network(net, BuilderSettings(opt_level=0, targets=(target,)))) > 1000
    with pytest.raises(ModelError, match="unknown target") as info:  # a setting the user gave: exit 2
        optimize_network(net, BuilderSettings(targets=("SM1",)))
    assert info.value.exit_code == 2


def test_store_and_load_engine_atomically(tmp_path):
    path = tmp_path / "out" / "model.plan"
    meta = engine_metadata(BuilderSettings(), {"layers": 3})
    store_engine(b"\x01engine-bytes", path, meta)
    data, loaded = load_engine(path)
    assert data == b"\x01engine-bytes"
    assert loaded["tensorrt_flavor"] == trtshim.flavor() and loaded["tensorrt_version"] == trtshim.version()
    assert loaded["target"] and loaded["layers"] == 3 and loaded["bytes"] == len(data)
    assert json.loads((tmp_path / "out" / "model.plan.json").read_text()) == loaded
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.plan", "model.plan.json"]  # no temp files left
    with pytest.raises(EngineBuildError, match="no engine"):
        load_engine(tmp_path / "missing.plan")
