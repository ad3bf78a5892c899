"""Small models with integer-id and mask inputs (text models), built offline with fixed seeds.

Their inputs only accept some values: a segment-id embedding has 2 rows, a
token embedding ``vocab`` rows, a padding mask is mostly True.  Nothing is
downloaded: keras-hub's ``BertBackbone`` is built from its constructor with
random weights.
"""

from __future__ import annotations

SEQ = 8


def embedding_classifier(seed: int = 0, vocab: int = 50, seq: int = SEQ):
    """keras-hub-style inputs: ``token_ids`` (``vocab`` rows), ``segment_ids`` (2 rows), bool ``padding_mask``.

    Masked average pooling divides by the number of True positions, so an
    all-False mask row is 0/0 = NaN on both sides.
    """
    import keras

    keras.utils.set_random_seed(seed)
    tok = keras.Input((seq,), batch_size=1, dtype="int32", name="token_ids")
    seg = keras.Input((seq,), batch_size=1, dtype="int32", name="segment_ids")
    mask = keras.Input((seq,), batch_size=1, dtype="bool", name="padding_mask")
    x = keras.layers.Add(name="sum")([keras.layers.Embedding(vocab, 8, name="token_embedding")(tok),
                                      keras.layers.Embedding(2, 8, name="segment_embedding")(seg)])
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x, mask=mask)
    out = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model([tok, seg, mask], out, name="embedding_classifier")


def bert_backbone(seed: int = 0, vocab: int = 100):
    """A one-layer keras-hub ``BertBackbone`` (inputs token_ids, segment_ids, int32 padding_mask; 2 segment rows)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    return keras_hub.models.BertBackbone(vocabulary_size=vocab, num_layers=1, num_heads=2, hidden_dim=8,
                                         intermediate_dim=16, max_sequence_length=16)


def export_bert(path, seed: int = 0) -> dict:
    """Export :func:`bert_backbone` as a SavedModel at ``path``; returns the ``--input`` shapes it needs."""
    bert_backbone(seed).export(str(path), verbose=False)
    return {name: (1, SEQ) for name in ("token_ids", "segment_ids", "padding_mask")}
