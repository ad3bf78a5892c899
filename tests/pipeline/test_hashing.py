from __future__ import annotations

import pytest

from pipeline.hashing import canonical_json, changed_keys, hash_listing, hash_path, hash_tree, key_of


def test_canonical_json_is_order_independent():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})
    assert key_of({"x": 1, "y": {"z": 2}}) == key_of({"y": {"z": 2}, "x": 1})
    assert key_of({"x": 1}) != key_of({"x": 2})


def test_tree_hash_depends_on_content_not_location(tmp_path):
    for root in (tmp_path / "a", tmp_path / "b" / "deeper"):
        (root / "variables").mkdir(parents=True)
        (root / "saved_model.pb").write_bytes(b"graph")
        (root / "variables" / "v.data").write_bytes(b"weights")
    assert hash_tree(tmp_path / "a") == hash_tree(tmp_path / "b" / "deeper")
    (tmp_path / "a" / "variables" / "v.data").write_bytes(b"weights2")
    assert hash_tree(tmp_path / "a") != hash_tree(tmp_path / "b" / "deeper")
    f = tmp_path / "f"
    f.write_bytes(b"")
    assert hash_path(f)  # empty files hash too


def test_changed_keys_are_dotted_names():
    old = {"config": {"builder.workspace": 1, "builder.opt_level": 3}, "toolchain": {"tensorrt": "1"}}
    new = {"config": {"builder.workspace": 2, "builder.opt_level": 3}, "toolchain": {"tensorrt": "1"}}
    assert changed_keys(old, new) == ["config.builder.workspace"]


def test_a_listing_names_each_file_and_only_the_listed_ones(tmp_path):
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("a")
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-312.pyc").write_bytes(b"junk")
    (tmp_path / "pkg" / "notes.txt").write_text("not code")
    (tmp_path / "one.py").write_text("one")
    (tmp_path / "other.py").write_text("other")
    listing = hash_listing(tmp_path, ["one.py", "pkg/"])
    assert list(listing) == ["one.py", "pkg/a.py"]
    (tmp_path / "other.py").write_text("edited")
    assert hash_listing(tmp_path, ["one.py", "pkg/"]) == listing
    old = dict(listing)
    (tmp_path / "pkg" / "a.py").write_text("a2")
    assert changed_keys({"code": old}, {"code": hash_listing(tmp_path, ["one.py", "pkg/"])}) == ["code.pkg/a.py"]
    with pytest.raises(FileNotFoundError, match="gone.py"):
        hash_listing(tmp_path, ["gone.py"])
