"""Models shared by the model-source tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bert_file(tmp_path_factory):
    """A small keras-hub BERT backbone with random weights (nothing downloaded), saved as .keras.

    Its inputs are a dict whose keys are not in sorted order (``token_ids``,
    ``segment_ids``, ``padding_mask``), each of shape ``(None, None)``.
    """
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    model = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=32,
                                          intermediate_dim=64, max_sequence_length=16)
    path = tmp_path_factory.mktemp("bert") / "bert.keras"
    model.save(path)
    return path
