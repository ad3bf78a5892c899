"""Step 5: comparison semantics, the report, bisecting, and inputs."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from converter.construct import construct
from converter.freeze import freeze
from converter.graph import parse
from converter.snapshot import Snapshot
from converter.verify import VerificationError, compare, make_inputs, verify

from .models import small_cnn


def test_compare_semantics():
    ref = np.array([1.0, -2.0, 1e-7, 0.0], np.float32)
    ok = compare("y", ref + np.float32(5e-6), ref, rtol=1e-4, atol=1e-5)
    assert ok.passed and ok.max_abs_err == pytest.approx(5e-6, rel=1e-2)  # float32 steps near 2.0 are 2.4e-7
    # max_rel_err is taken only over |ref| > atol (the 1e-7 and 0 entries are excluded)
    assert ok.max_rel_err == pytest.approx(5e-6, rel=1e-2)
    bad = compare("y", ref * np.float32(1.01), ref, rtol=1e-4, atol=1e-5)
    assert not bad.passed and bad.out_of_tolerance == pytest.approx(0.5)
    nan = compare("y", np.array([np.nan, 1.0]), np.array([1.0, 1.0]), rtol=1e-4, atol=1e-5)
    assert not nan.passed and math.isnan(nan.max_abs_err) and nan.to_dict()["max_abs_err"] is None
    shape = compare("y", np.zeros(3), np.zeros(4), 1e-4, 1e-5)
    assert not shape.passed and "shape" in shape.message
    tiny = compare("y", np.array([3e-6]), np.array([1e-6]), 1e-4, 1e-5)
    assert tiny.passed and tiny.max_rel_err == 0.0  # no element with |ref| > atol
    boolean = compare("b", np.array([True, False]), np.array([True, True]), 0, 0)
    assert not boolean.passed and boolean.out_of_tolerance == 0.5


@pytest.fixture(scope="module")
def converted():
    frozen = freeze(small_cnn())
    return frozen, construct(parse(frozen)).snapshot


def test_report_passes_and_renders(converted):
    frozen, snap = converted
    report = verify(frozen, snap, samples=2, intermediates=True)
    assert report.passed and report.checked == "reference-executor" and report.samples == 2
    text = report.render()
    assert "PASSED | probs" in text and "1/1 outputs passed" in text and "intermediates" in text
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["outputs"][0]["name"] == "probs" and d["intermediates"]["failed"] == 0


def test_bisect_names_the_first_diverging_node(converted):
    frozen, snap = converted
    broken = Snapshot(copy.deepcopy(snap.topology), {k: v.copy() for k, v in snap.weights.items()})
    broken.meta = copy.deepcopy(snap.meta)
    dw = next(layer for layer in broken.layers if layer["type"] == "CONVOLUTION" and "dw" in layer["name"])
    for key in dw["weights"].values():
        broken.weights[key] = broken.weights[key] * np.float32(1.5)
    report = verify(frozen, broken)
    assert not report.passed
    assert "FAILED | probs" in report.render()
    assert "/dw_1/" in report.first_divergence["node"]


def test_per_output_tolerances(converted):
    frozen, snap = converted
    report = verify(frozen, snap, tolerances={"probs": (0.0, 0.0)}, bisect_on_failure=False)
    cmp = report.outputs[0]
    assert (cmp.rtol, cmp.atol) == (0.0, 0.0)
    assert cmp.passed == (cmp.max_abs_err == 0.0)


def test_inputs_from_npz(converted, tmp_path):
    frozen, snap = converted
    x = np.random.default_rng(5).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    np.savez(tmp_path / "in.npz", image=x)
    feeds = make_inputs(frozen, npz=str(tmp_path / "in.npz"))
    np.testing.assert_array_equal(feeds[0]["image"], x)
    assert verify(frozen, snap, inputs_npz=str(tmp_path / "in.npz")).passed
    np.savez(tmp_path / "stacked.npz", image=np.stack([x, -x]))
    assert len(make_inputs(frozen, npz=str(tmp_path / "stacked.npz"))) == 2
    np.savez(tmp_path / "wrong.npz", other=x)
    with pytest.raises(VerificationError, match="lacks arrays for inputs"):
        make_inputs(frozen, npz=str(tmp_path / "wrong.npz"))
    np.savez(tmp_path / "shape.npz", image=x[:, :8])
    with pytest.raises(VerificationError, match="has shape"):
        make_inputs(frozen, npz=str(tmp_path / "shape.npz"))


def test_seeded_inputs_are_reproducible(converted):
    frozen, _ = converted
    a, b, c = make_inputs(frozen, seed=1), make_inputs(frozen, seed=1), make_inputs(frozen, seed=2)
    np.testing.assert_array_equal(a[0]["image"], b[0]["image"])
    assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_snapshot_blob_round_trip(converted):
    _, snap = converted
    again = Snapshot.from_bytes(snap.to_bytes())
    assert again == snap and again.meta == snap.meta and again.digest() == snap.digest()


def test_snapshot_blob_is_deterministic(converted):
    _, snap = converted
    import time

    first = snap.to_bytes()
    time.sleep(1.1)  # zip containers would stamp a new time here
    assert Snapshot.from_bytes(first).to_bytes() == first == snap.to_bytes()
