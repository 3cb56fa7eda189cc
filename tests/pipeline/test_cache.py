"""Cache keys and the record store (no arrays hashed; fingerprints of a few MiB at most)."""

import os

import pytest

from ecoraster.pipeline.cache import CacheStore, file_fingerprint, make_key


def test_fingerprint_sees_head_tail_size_and_mtime(tmp_zh):
    f = tmp_zh / "a.bin"
    data = bytearray(os.urandom(3 * (1 << 20)))  # 3 MiB: head 1 MiB, middle 1 MiB, tail 1 MiB
    f.write_bytes(data)
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    fp = file_fingerprint(f)
    assert file_fingerprint(f) == fp  # stable
    data[(1 << 20) + 10] ^= 0xFF  # a change in the middle, mtime set back: not seen (documented)
    f.write_bytes(data)
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    assert file_fingerprint(f) == fp
    os.utime(f, ns=(2_000_000_000, 2_000_000_000))  # …but any write moves the mtime
    assert file_fingerprint(f) != fp
    data[-1] ^= 0xFF  # the tail
    f.write_bytes(data)
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    assert file_fingerprint(f) != fp
    f.write_bytes(bytes(data) + b"x")  # the size
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    assert file_fingerprint(f) != fp


def test_make_key_is_order_independent_and_sensitive():
    a = make_key({"x": 1, "y": {"b": 2, "a": [1, 2]}})
    assert a == make_key({"y": {"a": [1, 2], "b": 2}, "x": 1})
    assert a != make_key({"x": 1, "y": {"b": 2, "a": [2, 1]}})
    assert len(a) == 64


def test_store_lookup_needs_same_key_and_untouched_outputs(tmp_zh):
    ws = tmp_zh / "ws"
    (ws / "svc").mkdir(parents=True)
    out = ws / "svc" / "o.tif"
    out.write_bytes(b"abc")
    store = CacheStore(ws)
    store.put("service.svc", "k1", [out], payload={"result": "svc/result.json"})
    assert store.lookup("service.svc", "k1").payload == {"result": "svc/result.json"}
    assert store.lookup("service.svc", "k2") is None  # other key
    out.write_bytes(b"abd")
    assert store.lookup("service.svc", "k1") is None  # output changed
    store.put("service.svc", "k1", [out])
    out.unlink()
    assert store.lookup("service.svc", "k1") is None  # output gone
    (ws / ".cache" / "service.svc.json").write_text("{not json")
    assert store.get("service.svc") is None  # unreadable record = no record
    (tmp_zh / "outside.tif").write_bytes(b"x")
    with pytest.raises(ValueError):
        store.put("x", "k", [tmp_zh / "outside.tif"])  # outputs must be inside the workspace
