"""Scratch arrays (ecoraster.io.scratch): windows read back equal the array; dask and pickling work."""

from __future__ import annotations

import pickle

import dask.array as da
import numpy as np
import pytest

from ecoraster.io.scratch import ScratchArray


@pytest.mark.parametrize("dtype", ["float64", "float32", "uint8", "uint32"])
def test_windows_equal_the_array(tmp_path, dtype):
    a = (np.random.default_rng(1).random((301, 257)) * 200).astype(dtype)
    s = ScratchArray.save(tmp_path / "a.npy", a)
    assert s.shape == a.shape and s.dtype == a.dtype and s.ndim == 2
    for key in [np.s_[0:1, 0:1], np.s_[10:20, 5:9], np.s_[3:5], np.s_[:, 250:], np.s_[300:, :], np.s_[290:400, 250:999],
                np.s_[5:5, 0:3]]:
        np.testing.assert_array_equal(s[key], a[key])
    np.testing.assert_array_equal(np.asarray(s), a)


def test_dask_and_pickle(tmp_path):
    a = np.arange(1000 * 700, dtype="float64").reshape(1000, 700)
    s = ScratchArray.save(tmp_path / "a.npy", a)
    lazy = da.from_array(s, chunks=256)
    assert float(lazy.sum().compute()) == a.sum()
    again = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(again[999:, 690:], a[999:, 690:])


def test_refuses_a_3d_array(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="2-D"):
        ScratchArray(tmp_path / "c.npy")
