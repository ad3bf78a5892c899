"""Reduced precision: the lowering of fp32 snapshots (converter.precision) and its verification/fallback.

Real models (Keras 3 CNN, Keras LSTM/GRU, keras-hub BERT) go through the whole path: convert, lower,
verify against TensorFlow on the executor's precision emulation, build an engine.  The policy is checked
rule by rule on networks built with TensorRT's API, where each rule's layer is the only candidate.
"""

from __future__ import annotations

import fnmatch

import numpy as np
import pytest

from converter import trt as trtshim
from converter.engine import optimize_network
from converter.errors import ModelError
from converter.precision import DEFAULT_TOLERANCES, LONG_REDUCTION, PrecisionSettings, lower, parse_precision
from converter.precision_verify import verify_precision
from converter.reference import ReferenceExecutor
from converter.snapshot import Snapshot

from .models import small_cnn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    from converter.construct import construct
    from converter.freeze import freeze
    from converter.graph import parse

    path = tmp_path_factory.mktemp("cnn") / "cnn.keras"
    model = small_cnn(0)
    import keras

    logits = keras.Model(model.inputs, model.get_layer("probs").output)  # softmax kept: it is the policy's case
    logits.save(path)
    frozen = freeze(path)
    return frozen, construct(parse(frozen)).snapshot


def _float_tensors(snapshot: Snapshot):
    return {t["name"]: t["dtype"] for t in snapshot.tensor_records().values()}


@pytest.mark.parametrize("precision,trt_type,np_type", [("fp16", "HALF", np.float16), ("bf16", "BF16", None)])
def test_lowering_structure(cnn, precision, trt_type, np_type):
    import ml_dtypes

    np_type = np_type or ml_dtypes.bfloat16
    frozen, snapshot = cnn
    before = snapshot.digest()
    lowered, plan = lower(snapshot, PrecisionSettings(precision))
    assert snapshot.digest() == before, "the fp32 snapshot must not be modified"
    assert lowered.topology["strongly_typed"] is True
    # I/O stay float32 under their names
    assert [t["name"] for t in lowered.inputs] == [t["name"] for t in snapshot.inputs]
    assert all(t["dtype"] == "FLOAT" for t in lowered.inputs)
    assert lowered.outputs == snapshot.outputs
    dtypes = _float_tensors(lowered)
    assert all(dtypes[name] == "FLOAT" for name in lowered.outputs)
    # every layer the plan puts in the reduced type has reduced outputs, and holds reduced weights
    reduced = [r for r in lowered.layers if plan.layers.get(r["name"]) == precision]
    assert reduced and plan.counts()[precision] == len(reduced)
    for rec in reduced:
        assert all(o["dtype"] in (trt_type, "INT32", "INT64", "BOOL") for o in rec["outputs"]), rec["name"]
        for arr in lowered.layer_weights(rec).values():
            assert arr.dtype == np.dtype(np_type), rec["name"]
    conv = next(r for r in lowered.layers if r["type"] == "CONVOLUTION")
    assert plan.layers[conv["name"]] == precision
    # every layer reads inputs of one float type (what a strongly typed network requires), casts included
    for rec in lowered.layers:
        kinds = {dtypes[n] for n in rec["inputs"] if n is not None and dtypes[n] in ("FLOAT", "HALF", "BF16")}
        if rec["type"] not in ("CAST",):
            assert len(kinds) <= 1, (rec["name"], kinds)
    assert plan.casts == sum(r["type"] == "CAST" for r in lowered.layers) - sum(
        r["type"] == "CAST" for r in snapshot.layers) > 0
    assert lowered.meta["precision"]["precision"] == precision


def test_fp32_and_int8_leave_the_snapshot_alone(cnn):
    _, snapshot = cnn
    for precision in ("fp32", "int8"):
        lowered, plan = lower(snapshot, PrecisionSettings(precision))
        assert lowered is snapshot and plan.casts == 0


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_lowered_snapshot_round_trips_rebuilds_and_builds_an_engine(cnn, tmp_path, precision):
    _, snapshot = cnn
    lowered, _ = lower(snapshot, PrecisionSettings(precision))
    again = Snapshot.from_bytes(lowered.to_bytes())
    assert again == lowered and again.digest() == lowered.digest()
    lowered.save(tmp_path / "s")
    loaded = Snapshot.load(tmp_path / "s")
    assert loaded == lowered
    builder, network = loaded.to_network()
    assert network.num_layers == lowered.layer_count
    for i in range(network.num_outputs):
        assert network.get_output(i).dtype == trtshim.module().DataType.FLOAT
    engine = optimize_network(loaded)
    assert len(engine) > 1000


def test_executor_emulates_the_reduced_type(cnn):
    """Values leaving an fp16 layer are fp16 numbers; the outputs are close to fp32 but not equal to it."""
    _, snapshot = cnn
    lowered, plan = lower(snapshot, PrecisionSettings("fp16"))
    rng = np.random.default_rng(0)
    feeds = {t["name"]: rng.standard_normal(t["shape"]).astype(np.float32) for t in snapshot.inputs}
    ref = ReferenceExecutor(snapshot).run(feeds, keep_intermediates=True)
    got = ReferenceExecutor(lowered).run(feeds, keep_intermediates=True)
    conv = next(r for r in lowered.layers if r["type"] == "CONVOLUTION")["outputs"][0]["name"]
    assert got[conv].dtype == np.float16
    assert not np.array_equal(got[conv].astype(np.float32), ref[conv])
    np.testing.assert_allclose(got[conv].astype(np.float32), ref[conv], rtol=2e-3, atol=2e-3)
    for name in snapshot.outputs:
        assert got[name].dtype == np.float32


def test_keep_fp32_patterns(cnn):
    _, snapshot = cnn
    conv = next(r["name"] for r in snapshot.layers if r["type"] == "CONVOLUTION")
    pattern = conv.rsplit("/", 1)[0] + "/*"
    lowered, plan = lower(snapshot, PrecisionSettings("fp16", keep_fp32=(pattern,)))
    matched = [r["name"] for r in snapshot.layers if fnmatch.fnmatchcase(r["name"], pattern)]
    assert conv in matched
    assert plan.kept_fp32[conv] == f"keep_fp32: {pattern}"
    rec = next(r for r in lowered.layers if r["name"] == conv)
    assert rec["outputs"][0]["dtype"] == "FLOAT"
    assert all(a.dtype == np.float32 for a in lowered.layer_weights(rec).values())
    with pytest.raises(ModelError) as err:
        lower(snapshot, PrecisionSettings("fp16", keep_fp32=("no/such/layer*",)))
    assert "match no layer" in str(err.value) and err.value.hint


@pytest.mark.parametrize("text,expected", [("FP16", "fp16"), ("half", "fp16"), ("bfloat16", "bf16"), ("fp32", "fp32"),
                                           ("int8", "int8")])
def test_parse_precision(text, expected):
    assert parse_precision(text) == expected


def test_bad_precision_and_io_are_user_errors():
    with pytest.raises(ModelError):
        PrecisionSettings("fp8")
    with pytest.raises(ModelError):
        PrecisionSettings("fp16", io="half")


# --------------------------------------------------------------------------- the policy, rule by rule

def _net_snapshot(build):
    trt = trtshim.module()
    builder, network = trtshim.create_network()
    keep: list = []
    build(trt, network, keep)
    return Snapshot.from_network(network)


def _const(trt, network, keep, arr):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    keep.append(arr)
    return network.add_constant(arr.shape, trt.Weights(arr)).get_output(0)


def _policy_case(kind):
    def build(trt, net, keep):
        x = net.add_input("x", trt.float32, (1, 4, 100))
        a = net.add_activation(x, trt.ActivationType.RELU)  # a reduced-precision layer before the case
        a.name = "before"
        t = a.get_output(0)
        if kind == "softmax":
            layer = net.add_softmax(t)
        elif kind == "long-reduction":
            layer = net.add_reduce(t, trt.ReduceOperation.SUM, 1 << 2, True)  # 100 > LONG_REDUCTION elements
        elif kind == "short-reduction":
            layer = net.add_reduce(t, trt.ReduceOperation.SUM, 1 << 1, True)  # 4 elements: stays reduced
        elif kind == "max-reduction":
            layer = net.add_reduce(t, trt.ReduceOperation.MAX, 1 << 2, True)  # MAX loses nothing
        elif kind == "exp-log-pow":
            layer = net.add_unary(t, trt.UnaryOperation.EXP)
        elif kind == "pow":
            layer = net.add_elementwise(t, _const(trt, net, keep, np.full((1, 1, 1), 2.0)),
                                        trt.ElementWiseOperation.POW)
        elif kind == "integer-result":
            layer = net.add_elementwise(t, _const(trt, net, keep, np.zeros((1, 1, 1))), trt.ElementWiseOperation.GREATER)
        elif kind == "out-of-range":
            layer = net.add_elementwise(t, _const(trt, net, keep, np.full((1, 1, 1), 1e6)), trt.ElementWiseOperation.PROD)
        elif kind == "normalization":
            scale = _const(trt, net, keep, np.ones((1, 1, 100)))
            bias = _const(trt, net, keep, np.zeros((1, 1, 100)))
            layer = net.add_normalization(t, scale, bias, 1 << 2)
        layer.name = "case"
        out = layer.get_output(0)
        if kind == "integer-result":
            out = net.add_cast(out, trt.float32).get_output(0)
        tail = net.add_activation(out, trt.ActivationType.TANH)  # the output layer (not a logits path: no product)
        tail.name = "tail"
        net.mark_output(tail.get_output(0))
    return build


@pytest.mark.parametrize("kind,reason", [
    ("softmax", "softmax"), ("long-reduction", "long-reduction"), ("short-reduction", None), ("max-reduction", None),
    ("exp-log-pow", "exp-log-pow"), ("pow", "exp-log-pow"), ("integer-result", "integer-result"),
    ("out-of-range", "out-of-range"), ("normalization", "normalization")])
def test_policy_rule(kind, reason):
    snapshot = _net_snapshot(_policy_case(kind))
    lowered, plan = lower(snapshot, PrecisionSettings("fp16"))
    assert plan.kept_fp32.get("case") == reason
    assert plan.layers["before"] == "fp16" and plan.layers["tail"] == "fp16"
    assert (plan.layers["case"] == "fp32") == (reason is not None)
    optimize_network(lowered)  # TensorRT accepts the types the lowering chose


def test_policy_out_of_range_is_fp16_only():
    snapshot = _net_snapshot(_policy_case("out-of-range"))
    _, plan = lower(snapshot, PrecisionSettings("bf16"))
    assert "case" not in plan.kept_fp32  # bf16 has float32's range


def test_reduction_threshold_is_the_documented_one():
    assert LONG_REDUCTION == 64


def test_final_logits_stay_fp32(cnn):
    _, snapshot = cnn
    _, plan = lower(snapshot, PrecisionSettings("fp16"))
    logits = [name for name, why in plan.kept_fp32.items() if why == "final-logits"]
    assert any("MatMul" in name for name in logits), plan.kept_fp32


def test_strongly_typed_construct_option(cnn):
    """The public ``strongly_typed`` option of construct(): the fp32 network is strongly typed and builds."""
    from converter.construct import construct
    from converter.graph import parse

    frozen, snapshot = cnn
    typed = construct(parse(frozen), strongly_typed=True).snapshot
    assert typed.topology["strongly_typed"] is True
    # TensorRT-RTX networks are strongly typed whatever the flag (measured: get_flag(STRONGLY_TYPED) is True);
    # full TensorRT builds weakly typed networks unless asked
    assert snapshot.topology["strongly_typed"] is (trtshim.flavor() == "tensorrt-rtx")
    assert typed.layer_count == snapshot.layer_count
    assert len(optimize_network(typed)) > 1000


# --------------------------------------------------------------------------- verification and fallback

@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_verify_at_the_default_tolerances(cnn, precision):
    frozen, snapshot = cnn
    result = verify_precision(frozen, snapshot, PrecisionSettings(precision), samples=2, intermediates=True)
    report = result.report
    assert report.passed, report.render()
    assert (report.rtol, report.atol) == DEFAULT_TOLERANCES[precision]
    assert not report.vacuous_outputs
    info = report.precision
    assert info["precision"] == precision and info["fallback"] == []
    assert set(info["against_fp32_network"]) == set(frozen.outputs)
    assert 0 < max(info["against_fp32_network"].values()) < DEFAULT_TOLERANCES[precision][1]
    assert info["top_layers"] and all(t["growth"] is not None for t in info["top_layers"])
    text = report.render()
    assert f"precision {precision}" in text and "against the fp32 network" in text
    assert report.to_dict()["precision"]["precision"] == precision


def test_fallback_keeps_the_fewest_ranked_layers_that_pass(cnn):
    """At a tolerance fp16 misses and fp32 meets, the search keeps a prefix of the ranking in fp32 and passes."""
    frozen, snapshot = cnn
    plain = verify_precision(frozen, snapshot, PrecisionSettings("fp16"), fallback=False)
    err = max(o.max_abs_err for o in plain.report.outputs)
    tol = err / 20
    failing = verify_precision(frozen, snapshot, PrecisionSettings("fp16"), rtol=0.0, atol=tol, fallback=False)
    assert not failing.passed
    result = verify_precision(frozen, snapshot, PrecisionSettings("fp16"), rtol=0.0, atol=tol)
    assert result.passed, result.report.render()
    kept = result.settings.fallback
    assert kept and set(kept) <= {r["layer"] for r in result.ranking}
    ranked = [r["layer"] for r in result.ranking]
    assert set(kept) == set(ranked[:len(kept)]), "the fallback set is a prefix of the ranking"
    assert all(result.plan.kept_fp32[name] == "fallback" for name in kept)
    assert result.report.precision["fallback"] == sorted(kept)
    passing = [t["kept"] for t in result.trials if t["passed"]]
    assert min(passing) == len(kept)
    assert any(not t["passed"] for t in result.trials if t["kept"] == len(kept) - 1) or len(kept) == 1
    for rec in result.snapshot.layers:
        if rec["name"] in kept:
            assert all(o["dtype"] != "HALF" for o in rec["outputs"])


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_recurrent_and_transformer_models(tmp_path, precision):
    """Loops (Keras LSTM + GRU) and a keras-hub BERT backbone in reduced precision: verified, and engines build."""
    import keras

    from converter.construct import construct
    from converter.freeze import freeze
    from converter.graph import parse

    from .text_models import export_bert

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 8), batch_size=1, name="seq")
    x = keras.layers.LSTM(16, return_sequences=True, name="lstm")(inp)
    x = keras.layers.GRU(16, name="gru")(x)
    keras.Model(inp, keras.layers.Dense(3, name="logits")(x)).save(tmp_path / "rnn.keras")
    shapes = export_bert(tmp_path / "bert")
    cases = [(tmp_path / "rnn.keras", None, {}),
             (tmp_path / "bert", shapes, dict(input_ranges={"token_ids": (0, 100), "segment_ids": (0, 2)},
                                              input_values={"padding_mask": 1}))]
    for path, inputs, options in cases:
        frozen = freeze(path, inputs=inputs)
        snapshot = construct(parse(frozen)).snapshot
        result = verify_precision(frozen, snapshot, PrecisionSettings(precision), intermediates=True, **options)
        assert result.passed, result.report.render()
        assert result.plan.counts()[precision] > 0
        if path.name == "rnn.keras":
            loop_layers = {r["name"] for r in result.snapshot.layers if r["type"] == "RECURRENCE"}
            assert loop_layers and all(result.plan.layers[n] == precision for n in loop_layers)
        assert len(optimize_network(result.snapshot)) > 1000
