import numpy as np

from ecoraster.kernels.lookup import DENSE_LUT_MAX_RANGE, build_lut, difference, lookup_times_area


def _lookup(classes, codes, values, factor, nodata_in=255, nodata_out=-1.0):
    offset, lut, known = build_lut(codes, values)
    out = np.empty(classes.shape, dtype=np.float32)
    lookup_times_area(classes, nodata_in, offset, lut, known, codes, values, factor, np.float32(nodata_out), out)
    return out


def test_lookup_times_area_by_hand():
    classes = np.array([[1, 2], [2, 255]], dtype=np.int64)
    codes = np.array([1, 2], dtype=np.int64)
    values = np.array([86.0, 28.0])          # Mg C/ha
    factor = np.array([0.09, 0.18])          # ha per pixel in each row
    out = _lookup(classes, codes, values, factor)
    # row 0: 86 × 0.09 = 7.74, 28 × 0.09 = 2.52; row 1: 28 × 0.18 = 5.04, nodata
    np.testing.assert_allclose(out, [[7.74, 2.52], [5.04, -1.0]], rtol=1e-6)


def test_lookup_sparse_codes_use_binary_search():
    codes = np.array([3, DENSE_LUT_MAX_RANGE * 4], dtype=np.int64)
    offset, lut, known = build_lut(codes, np.array([1.0, 2.0]))
    assert lut.size == 0
    classes = np.array([[3, DENSE_LUT_MAX_RANGE * 4, 7]], dtype=np.int64)
    out = _lookup(classes, codes, np.array([1.0, 2.0]), np.array([10.0]))
    # 1 × 10, 2 × 10, code 7 unknown → nodata
    np.testing.assert_array_equal(out, [[10.0, 20.0, -1.0]])


def test_difference_is_alt_minus_bas_with_nodata():
    bas = np.array([[1.0, -9999.0], [5.0, np.nan]], dtype=np.float32)
    alt = np.array([[4.0, 2.0], [-9999.0, 1.0]], dtype=np.float32)
    out = np.empty_like(bas)
    difference(bas, alt, np.float32(-9999.0), out)
    # 4 − 1 = 3; any nodata/NaN on either side → nodata
    np.testing.assert_array_equal(out, [[3.0, -9999.0], [-9999.0, -9999.0]])


def test_unique_counts_small_ints_match_numpy():
    import dask.array as da

    from ecoraster.tables import unique_counts

    rng = np.random.default_rng(3)
    for dtype, nodata in ((np.uint8, 255), (np.int8, -128), (np.int16, -9999), (np.uint16, 0), (np.int32, -1)):
        a = rng.integers(0, 40, size=(300, 200)).astype(dtype)
        a[:5, :5] = nodata
        # the extremes of the type land in the first and last bins of the counting kernel
        a[10, :3] = np.iinfo(dtype).min if np.iinfo(dtype).min != nodata else 0
        a[11, :2] = np.iinfo(dtype).max if np.iinfo(dtype).max != nodata else 0
        got = unique_counts(da.from_array(a, chunks=128), nodata)
        values, counts = np.unique(a[a != nodata], return_counts=True)
        assert got == dict(zip(values.tolist(), counts.tolist())), dtype
