"""The real-world corpus keeps its outcomes through `tf2trt convert` (slow tier).

Every model of tests/converter/corpus_models.py is built as its library saves
it and converted with only the ``--input`` shapes it leaves unknown: the ones
that pass keep passing (verified at fp32 tolerances, every intermediate
tensor too), the ones that fail keep failing with their documented, clean
error (exit 2, never an internal error).  docs/zoo.md's "Beyond
keras.applications" table is bench/corpus.py's rendering of the same runs.
"""

from __future__ import annotations

import pytest

from bench.corpus import run
from .corpus_models import CORPUS, key

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("entry", CORPUS, ids=key)
def test_corpus_model(entry, tmp_path):
    row = run(entry, directory=tmp_path, timeout=600)
    if entry.expect == "pass":
        assert row["exit"] == 0 and row["passed"], row
        assert row["intermediates"]["checked"] > 0 and row["intermediates"]["failed"] == 0, row
        assert row["tf_ops"] > 0 and row["layers"] > 0, row
    else:
        code, text = entry.expect
        assert row["exit"] == code, row
        assert text in row["error"] and "internal error" not in row["error"], row
