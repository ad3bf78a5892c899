"""Attention blocks beyond plain multi-head attention, from the library people take them from (keras-hub), random
weights and fixed seeds, offline (no preset, no tokenizer), saved as ``.keras``:

* Swin (``SwinTransformerBackbone``): window partition by reshape/transpose, the cyclic shift (``ops.roll``) and
  its shifted-window attention mask, the relative position bias table gathered by a constant index, window
  reverse and the roll back, MLP, patch merging; also a feature map the window does not divide (padded windows).
* DeBERTa-v3 (``DebertaV3Backbone``): disentangled attention, content-to-position and position-to-content scores
  gathered (``tf.gather(batch_dims=3)``) from log-bucketed relative positions; the sequence is longer than the
  bucket span, so the log buckets are used.

Each is converted the way a user does it (freeze → parse → construct), verified against TensorFlow on the
reference executor at the default fp32 tolerances with every intermediate tensor compared, and built into a
TensorRT engine.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # transformer blocks, ~5-15 s each: the full run keeps them

from converter import construct
from converter.engine import optimize_network
from converter.freeze import open_model
from converter.graph import parse
from converter.verify import verify

VOCAB = 64


def _seed():
    import keras

    keras.utils.set_random_seed(0)
    import keras_hub

    return keras_hub


def _swin(image, depths, heads):
    def build(path):
        kh = _seed()
        kh.models.SwinTransformerBackbone(image_shape=image, embed_dim=16, depths=depths, num_heads=heads,
                                          window_size=4, patch_size=4).save(path)

    return build


def _deberta(path):
    kh = _seed()
    kh.models.DebertaV3Backbone(vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                                max_sequence_length=16, bucket_size=4).save(path)


#: name → (builder, batch, sequence length or None for images, TF ops the block must have)
CASES = {
    # 32x32 / patch 4 = 8x8 tokens, window 4: stage 0 is W-MSA then SW-MSA (shift 2) and patch merging; stage 1
    # (4x4 tokens) clamps to one unshifted window
    "swin-shifted-windows": (_swin((32, 32, 3), (2, 2), (2, 2)), 2, None, {"Roll", "BatchMatMulV2", "Softmax"}),
    # 24x24 / 4 = 6x6 tokens: padded to 8x8 for the 4x4 windows, shifted by 2, cropped back
    "swin-padded-windows": (_swin((24, 24, 3), (2,), (2,)), 1, None, {"Roll", "Pad", "StridedSlice"}),
    # pos_key/pos_query have batch 1 and broadcast against a batch of 2 in the einsums
    "deberta-v3-disentangled": (_deberta, 2, 8, {"GatherV2", "BatchMatMulV2", "Softmax"}),
}


def _convert(name, tmp_path):
    build, batch, seq, ops = CASES[name]
    path = tmp_path / f"{name}.keras"
    build(path)
    # load once and freeze that: an unnamed keras.Input's name ("input_layer_N") depends on what the process loaded
    source = open_model(str(path))
    if seq is None:
        shapes = {i.name: (batch,) + tuple(i.shape[1:]) for i in source.inputs}
    else:
        shapes = {i.name: (batch, seq) for i in source.inputs}
    frozen = source.freeze(shapes)
    graph = parse(frozen)
    counts = graph.op_counts()
    assert ops <= set(counts), counts
    return frozen, construct(graph)


def _ranges(frozen):
    """Token ids below the vocabulary; padding masks 0/1 (some positions masked)."""
    return {spec.name: ((0, 2) if "mask" in spec.name else (0, VOCAB))
            for spec in frozen.inputs if spec.dtype.startswith("int")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_attention_block_converts_verifies_and_builds(name, tmp_path):
    frozen, net = _convert(name, tmp_path)
    report = verify(frozen, net.snapshot, samples=2, intermediates=True, input_ranges=_ranges(frozen))
    assert report.passed, report.render()
    assert report.intermediates["checked"] > 0 and report.intermediates["failed"] == 0, report.render()
    assert optimize_network(net)  # TensorRT accepts every layer: a serialized engine, built ahead of time


def test_swin_with_a_dynamic_batch_converts_verifies_and_builds(tmp_path):
    """The windows' batch is B × windows (``reshape(-1, ...)``): with B dynamic (1..2) it is still right at every
    profile shape."""
    from converter.profiles import ShapeRange

    path = tmp_path / "swin.keras"
    CASES["swin-shifted-windows"][0](path)
    source = open_model(str(path))
    profile = {i.name: ShapeRange((1, 32, 32, 3), (1, 32, 32, 3), (2, 32, 32, 3)) for i in source.inputs}
    frozen = source.freeze(profiles=[profile])
    assert frozen.inputs[0].shape[0] == -1
    net = construct(parse(frozen))
    report = verify(frozen, net.snapshot, samples=1, intermediates=True)
    assert report.passed, report.render()
    assert [row["passed"] for row in report.shapes] == [True, True], report.render()
    assert report.intermediates["failed"] == 0, report.render()
    assert optimize_network(net)
