"""The shared kernels: one class lookup, one histogram / percentile, one NDVI → FVC → LAI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecoraster.kernels import ingest_optical
from ecoraster.kernels.casa import percentile_from_histogram
from ecoraster.kernels.classes import class_lut, class_row, row_index
from ecoraster.kernels.histogram import class_histogram, percentile
from ecoraster.kernels.ingest_lookup import build_dense_lut
from ecoraster.kernels.lookup import build_lut
from ecoraster.kernels.vegetation import lai_from_fvc, lai_from_ndvi


def test_class_lut_forms():
    lut = class_lut([12, 10, 15], [1.5, 2.5, 3.5], fill=0.0)
    assert lut.offset == 10 and list(lut.values) == [2.5, 0.0, 1.5, 0.0, 0.0, 3.5]
    idx = row_index([3, 1])
    assert list(idx) == [-1, 1, -1, 0] and class_row(3, 255, idx) == 0 and class_row(255, 255, idx) == -1
    assert class_row(2, 255, idx) == -1 and class_row(9, 255, idx) == -1
    assert class_lut([0, 1 << 21], fill=-1) is None  # wider than the dense limit
    # the earlier builders are this one
    offset, values, known = build_lut(np.array([5, 7]), np.array([1.0, 2.0]))
    assert offset == 5 and list(values) == [1.0, 0.0, 2.0] and list(known) == [True, False, True]
    dense, off = build_dense_lut(np.array([10, 20]), np.array([11, 52]))
    assert off == 10 and dense[0] == 11 and dense[10] == 52 and dense[5] == -1 and dense.dtype == np.int32


def test_histogram_and_percentile_by_hand():
    values = np.array([[[0.05, 0.15, 0.95], [np.nan, -0.2, 0.25]]], dtype=np.float32)  # 1 layer, 2 × 3
    classes = np.array([[1, 1, 1], [1, 1, 2]])
    counts = np.zeros((2, 10), dtype=np.int64)
    class_histogram(values, classes, 0, row_index([1, 2]), 0.0, 1.0, True, counts)
    # class 1 (row 0): 0.05 → bin 0, 0.15 → bin 1, 0.95 → bin 9; NaN and −0.2 not counted; class 2: 0.25 → bin 2
    assert list(np.flatnonzero(counts[0])) == [0, 1, 9] and counts[1, 2] == 1 and counts.sum() == 4
    # median of class 1: cumulative 1, 2, 3 → 0.5 × 3 = 1.5 reached in bin 1 → centre 0.15
    assert percentile(counts[0], 0.5, 0.0, 1.0) == pytest.approx(0.15)
    assert percentile_from_histogram(counts[0], 0.5) == pytest.approx(0.15)
    assert math.isnan(percentile(np.zeros(4), 0.5, -1.0, 1.0))
    # the optical form: bins over [−1, 1], percentile in % (20,000 bins of 1e-4)
    hist = ingest_optical.ndvi_histogram(np.array([[-1.5, 0.0]], np.float32), np.zeros((1, 2), np.uint8),
                                         np.array([0]), 1)
    assert hist[0, 0] == 1 and hist[0, 10000] == 1  # −1.5 clipped into the first bin
    assert ingest_optical.histogram_percentile(hist[0], 100) == pytest.approx(0.00005)


def test_one_ndvi_fvc_lai_relation():
    ndvi = np.array([[0.05, 0.455, 0.86, 1.0, np.nan]], dtype=np.float32)
    out = np.empty_like(ndvi)
    lai_from_ndvi(ndvi, 0.05, 0.86, 0.5, 0.95, out)
    # FVC = (NDVI − 0.05) / 0.81: 0, 0.5, 1 → capped 0.95; LAI = −ln(1 − FVC) / 0.5
    expected = [0.0, -math.log(0.5) / 0.5, -math.log(0.05) / 0.5, -math.log(0.05) / 0.5]
    np.testing.assert_allclose(out[0, :4], expected, rtol=1e-5, atol=1e-6)  # float32 NDVI 0.05 ≠ 0.05
    assert np.isnan(out[0, 4]) and np.nanmax(out) == pytest.approx(5.991465, rel=1e-6)  # LAI ≤ 6.0
    fvc = np.array([[0.5, 0.97, 1.0, -0.1, np.nan]], dtype=np.float32)
    lai = lai_from_fvc(fvc, 0.5, 0.95)
    np.testing.assert_allclose(lai[0, :4], [-math.log(0.5) / 0.5, 5.991465, 5.991465, 0.0], rtol=1e-5)
    assert np.isnan(lai[0, 4])
