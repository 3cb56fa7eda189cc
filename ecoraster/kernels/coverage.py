"""Exact polygon–pixel coverage and coverage-weighted sums (pure numba kernels, no I/O).

Coverage of a ring in a pixel is computed with signed areas, the way font rasterisers
do it. Coordinates are first mapped to pixel space (``u`` = column, ``v`` = row, both
continuous, pixel edges at integers). Every ring edge is cut at the pixel-row lines;
in each row strip the piece of edge adds, for every pixel of the row, the signed area
of the part of the pixel lying to the right of the piece. Over a closed ring those
contributions add up to ± the area of ring ∩ pixel. Instead of touching every pixel to
the right, each piece adds its exact share to the pixel(s) it crosses and the rest
(``height − share``) to the next column; a prefix sum along the row then gives the
coverage of every pixel. Pixels crossed by no edge have integer coverage (0 or 1), so
they are rounded to it exactly. Parts of a ring left of the grid are projected onto
the grid's left edge, parts right of it contribute nothing, rows outside the grid are
skipped: pixels outside the grid are dropped, as exactextract does.

Fractions are per-pixel areas in pixel units (1 = whole pixel). For each ring the
fraction is rounded to float32 and added (exterior) or subtracted (hole) in float32,
polygon after polygon, which is what exactextract does; that is why sums agree with it
to ~1e-12 relative, not only 1e-7. With ``exact64=True`` the fractions are kept in
float64 instead (more exact; then exactextract differs by its float32 rounding).

Output of :func:`coverage_chunk`, per geometry: *partial* pixels (row, col, fraction)
and *runs* of fully covered pixels (row, first col, end col) — interior pixels are
run-length encoded, which keeps the weights of 100 Mpx small.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

#: Largest working window (pixels) one geometry uses at once; bigger ones go in row blocks.
MAX_WINDOW_CELLS = 1 << 21


@nb.njit(cache=True, nogil=True)
def _edge_into_rows(acc, touched, u0, v0, u1, v1, rlo, rhi, clo, chi):
    """Add one edge (pixel-space coords local to the window) to rows [rlo, rhi) of
    ``acc``/``touched``, restricted to columns [clo, chi) (parts left of ``clo`` are
    projected onto it, parts right of ``chi`` dropped)."""
    if v0 == v1:
        # no area, but the pixels it runs through are partly covered: mark them
        r = int(math.floor(v0))
        if r != v0 and rlo <= r < rhi:
            c_first = max(int(math.floor(min(u0, u1))), clo)
            c_last = min(int(math.floor(max(u0, u1))), chi - 1)
            for c in range(c_first, c_last + 1):
                touched[r - rlo, c - clo] = 1
        return
    sign = 1.0 if v1 > v0 else -1.0
    if v0 < v1:
        va, ua, vb, ub = v0, u0, v1, u1
    else:
        va, ua, vb, ub = v1, u1, v0, u0
    r_start = max(int(math.floor(va)), rlo)
    r_end = min(int(math.ceil(vb)), rhi)
    dv = vb - va
    du = ub - ua
    for r in range(r_start, r_end):
        # piece of the edge inside the strip r <= v <= r + 1
        if va >= r:
            ya, xa = va, ua
        else:
            ya, xa = float(r), ua + (r - va) / dv * du
        if vb <= r + 1:
            yb, xb = vb, ub
        else:
            yb, xb = float(r + 1), ua + (r + 1 - va) / dv * du
        h = sign * (yb - ya)
        if h == 0.0:
            continue
        row = r - rlo
        if xa <= xb:
            xmin, xmax = xa, xb
        else:
            xmin, xmax = xb, xa
        if xmin == xmax:  # vertical piece
            if xmin < clo:
                acc[row, 0] += h
            elif xmin < chi:
                c = int(math.floor(xmin))
                if c >= chi:
                    c = chi - 1
                share = h * ((c + 1) - xmin)
                acc[row, c - clo] += share
                acc[row, c - clo + 1] += h - share
                touched[row, c - clo] = 1
            continue
        width = xmax - xmin
        if xmin < clo:
            acc[row, 0] += h * (min(xmax, float(clo)) - xmin) / width
        c_first = max(int(math.floor(xmin)), clo)
        c_last = min(int(math.floor(xmax)), chi - 1)
        for c in range(c_first, c_last + 1):
            a = max(xmin, float(c))
            b = min(xmax, float(c + 1))
            if b <= a:
                continue
            hc = h * (b - a) / width
            share = hc * ((c + 1) - 0.5 * (a + b))
            acc[row, c - clo] += share
            acc[row, c - clo + 1] += hc - share
            touched[row, c - clo] = 1


@nb.njit(cache=True, nogil=True)
def _ring_signed_area(us, vs, start, end):
    """Shoelace area of ring vertices [start, end) in pixel space (v down)."""
    s = 0.0
    u0 = us[start]
    for i in range(start + 1, end - 1):
        s += (us[i] - u0) * (vs[i + 1] - vs[i - 1])
    return 0.5 * s


@nb.njit(cache=True, nogil=True)
def _geometry_coverage(us, vs, ring_off, ring_hole, g_r0, g_r1, nrows, ncols, max_cells, exact64,
                       out_prow, out_pcol, out_pfrac, p_start, p_cap,
                       out_rrow, out_rc0, out_rc1, r_start, r_cap, row0, col0):
    """Coverage of one geometry (rings g_r0..g_r1, coords local to its window of
    ``nrows`` × ``ncols`` starting at grid row ``row0``, col ``col0``).

    Returns (n_partial, n_runs) or (-1, -1) when the buffers are too small.
    """
    nring = g_r1 - g_r0
    orient = np.zeros(nring, dtype=np.float64)
    rbox = np.zeros((nring, 4), dtype=np.int64)
    for k in range(nring):
        a, b = ring_off[g_r0 + k], ring_off[g_r0 + k + 1]
        area = _ring_signed_area(us, vs, a, b)
        # coverage = -(prefix sum) for positively oriented rings in (u, v-down) space
        orient[k] = -1.0 if area > 0 else (1.0 if area < 0 else 0.0)
        umin, umax, vmin, vmax = np.inf, -np.inf, np.inf, -np.inf
        for i in range(a, b):
            umin = min(umin, us[i])
            umax = max(umax, us[i])
            vmin = min(vmin, vs[i])
            vmax = max(vmax, vs[i])
        rbox[k, 0] = max(int(math.floor(vmin)), 0)
        rbox[k, 1] = min(int(math.ceil(vmax)), nrows)
        rbox[k, 2] = max(int(math.floor(umin)), 0)
        rbox[k, 3] = min(int(math.ceil(umax)), ncols)
    block = max(1, min(nrows, max_cells // max(ncols, 1)))
    acc = np.zeros((block, ncols + 1), dtype=np.float64)
    touched = np.zeros((block, ncols), dtype=np.uint8)
    res32 = np.zeros((block, ncols), dtype=np.float32)
    res64 = np.zeros((block if exact64 else 1, ncols if exact64 else 1), dtype=np.float64)
    np_ = 0
    nr = 0
    for b0 in range(0, nrows, block):
        b1 = min(b0 + block, nrows)
        res32[:, :] = 0.0
        if exact64:
            res64[:, :] = 0.0
        for k in range(nring):
            if orient[k] == 0.0:
                continue
            rlo = max(rbox[k, 0], b0)
            rhi = min(rbox[k, 1], b1)
            clo, chi = rbox[k, 2], rbox[k, 3]
            if rhi <= rlo or chi <= clo:
                continue
            for r in range(rlo - b0, rhi - b0):
                acc[r, 0: chi - clo + 1] = 0.0
                touched[r, 0: chi - clo] = 0
            a, b = ring_off[g_r0 + k], ring_off[g_r0 + k + 1]
            for i in range(a, b - 1):
                _edge_into_rows(acc[rlo - b0:], touched[rlo - b0:], us[i], vs[i], us[i + 1], vs[i + 1],
                                rlo, rhi, clo, chi)
            hole = ring_hole[g_r0 + k]
            o = orient[k]
            for r in range(rlo - b0, rhi - b0):
                s = 0.0
                for c in range(clo, chi):
                    s += acc[r, c - clo]
                    f = o * s
                    if touched[r, c - clo] == 0:
                        f = float(round(f))
                    if exact64:
                        if hole:
                            res64[r, c] -= f
                        else:
                            res64[r, c] += f
                    else:
                        f32 = np.float32(f)
                        if hole:
                            res32[r, c] = res32[r, c] - f32
                        else:
                            res32[r, c] = res32[r, c] + f32
        # emit: runs of full pixels, partial pixels otherwise
        for r in range(0, b1 - b0):
            c = 0
            while c < ncols:
                f = res64[r, c] if exact64 else np.float64(res32[r, c])
                if f == 1.0:
                    c_end = c + 1
                    while c_end < ncols:
                        g = res64[r, c_end] if exact64 else np.float64(res32[r, c_end])
                        if g != 1.0:
                            break
                        c_end += 1
                    if nr >= r_cap:
                        return -1, -1
                    out_rrow[r_start + nr] = row0 + b0 + r
                    out_rc0[r_start + nr] = col0 + c
                    out_rc1[r_start + nr] = col0 + c_end
                    nr += 1
                    c = c_end
                    continue
                if f > 0.0:
                    if np_ >= p_cap:
                        return -1, -1
                    out_prow[p_start + np_] = row0 + b0 + r
                    out_pcol[p_start + np_] = col0 + c
                    out_pfrac[p_start + np_] = f
                    np_ += 1
                c += 1
    return np_, nr


@nb.njit(cache=True, nogil=True)
def _window(xs, ys, a, b, tc, ta, tf, te, height, width):
    """Grid window (row0, row1, col0, col1) of vertices [a, b), clipped to the grid."""
    umin, umax, vmin, vmax = np.inf, -np.inf, np.inf, -np.inf
    for i in range(a, b):
        u = (xs[i] - tc) / ta
        v = (ys[i] - tf) / te
        umin = min(umin, u)
        umax = max(umax, u)
        vmin = min(vmin, v)
        vmax = max(vmax, v)
    if not (umin < umax and vmin < vmax):
        return 0, 0, 0, 0
    r0 = max(int(math.floor(vmin)), 0)
    r1 = min(int(math.ceil(vmax)), height)
    c0 = max(int(math.floor(umin)), 0)
    c1 = min(int(math.ceil(umax)), width)
    if r1 <= r0 or c1 <= c0:
        return 0, 0, 0, 0
    return r0, r1, c0, c1


@nb.njit(cache=True, parallel=True)
def capacity(xs, ys, ring_off, geom_ring_off, tc, ta, tf, te, height, width):
    """Upper bounds on partial pixels and runs per geometry.

    Returns
    -------
    (p_cap, r_cap) : int64 arrays, one value per geometry
    """
    n = geom_ring_off.shape[0] - 1
    p_cap = np.zeros(n, dtype=np.int64)
    r_cap = np.zeros(n, dtype=np.int64)
    for g in nb.prange(n):
        a = ring_off[geom_ring_off[g]]
        b = ring_off[geom_ring_off[g + 1]]
        if b <= a:
            continue
        r0, r1, c0, c1 = _window(xs, ys, a, b, tc, ta, tf, te, height, width)
        if r1 <= r0:
            continue
        total = 0
        for k in range(geom_ring_off[g], geom_ring_off[g + 1]):
            for i in range(ring_off[k], ring_off[k + 1] - 1):
                u0 = math.floor((xs[i] - tc) / ta)
                u1 = math.floor((xs[i + 1] - tc) / ta)
                v0 = math.floor((ys[i] - tf) / te)
                v1 = math.floor((ys[i + 1] - tf) / te)
                total += int(abs(u1 - u0) + abs(v1 - v0)) + 2
        cells = (r1 - r0) * (c1 - c0)
        p_cap[g] = min(total, cells)
        r_cap[g] = min(total + (r1 - r0), cells)
    return p_cap, r_cap


@nb.njit(cache=True, parallel=True)
def coverage_chunk(xs, ys, ring_off, ring_hole, geom_ring_off, tc, ta, tf, te, height, width,
                   p_off, r_off, exact64, max_cells):
    """Coverage of every geometry of a chunk on a north-up grid.

    Parameters
    ----------
    xs, ys : float64 arrays
        Vertex coordinates in the grid CRS; rings closed (first == last vertex).
    ring_off : int64 array (n_rings + 1)
        Vertex offsets of the rings; the rings of one polygon come exterior first.
    ring_hole : bool array (n_rings)
        True for interior rings (holes).
    geom_ring_off : int64 array (n_geoms + 1)
        Ring offsets of each geometry (zone).
    tc, ta, tf, te : float
        Grid transform: x = tc + ta·col, y = tf + te·row (te < 0 for north-up).
    height, width : int
        Grid shape in pixels.
    p_off, r_off : int64 arrays (n_geoms + 1)
        Buffer offsets from :func:`capacity` (cumulative sums).
    exact64 : bool
        Keep float64 fractions instead of exactextract's float32.
    max_cells : int
        Working-window limit in pixels per geometry.

    Returns
    -------
    prow, pcol, pfrac, p_n, rrow, rc0, rc1, r_n
        Partial pixels (grid row, col, fraction of the pixel area) and full-coverage runs
        (grid row, first col, end col exclusive) in per-geometry slots; ``p_n``/``r_n``
        hold the used length of each slot (-1 if a slot overflowed: invalid geometry).
    """
    n = geom_ring_off.shape[0] - 1
    prow = np.empty(p_off[n], dtype=np.int32)
    pcol = np.empty(p_off[n], dtype=np.int32)
    pfrac = np.empty(p_off[n], dtype=np.float64)  # float32 values when not exact64
    rrow = np.empty(r_off[n], dtype=np.int32)
    rc0 = np.empty(r_off[n], dtype=np.int32)
    rc1 = np.empty(r_off[n], dtype=np.int32)
    p_n = np.zeros(n, dtype=np.int64)
    r_n = np.zeros(n, dtype=np.int64)
    for g in nb.prange(n):
        k0, k1 = geom_ring_off[g], geom_ring_off[g + 1]
        a = ring_off[k0]
        b = ring_off[k1]
        if b <= a or p_off[g + 1] == p_off[g]:
            continue
        r0, r1, c0, c1 = _window(xs, ys, a, b, tc, ta, tf, te, height, width)
        if r1 <= r0:
            continue
        # vertex coords local to the window, in pixels; x - tc is exact for nearby
        # values (Sterbenz), so this keeps ~1e-16 of the window, not of the CRS's
        # large coordinates (ulp of 39,500,000 m is 7.5e-9 m)
        xw = c0 * ta
        yw = r0 * te
        us = np.empty(b - a, dtype=np.float64)
        vs = np.empty(b - a, dtype=np.float64)
        for i in range(a, b):
            us[i - a] = ((xs[i] - tc) - xw) / ta
            vs[i - a] = ((ys[i] - tf) - yw) / te
        local_off = ring_off[k0:k1 + 1] - a
        npart, nrun = _geometry_coverage(
            us, vs, local_off, ring_hole[k0:k1], 0, k1 - k0, r1 - r0, c1 - c0, max_cells, exact64,
            prow, pcol, pfrac, p_off[g], p_off[g + 1] - p_off[g],
            rrow, rc0, rc1, r_off[g], r_off[g + 1] - r_off[g], r0, c0)
        p_n[g] = npart
        r_n[g] = nrun
    return prow, pcol, pfrac, p_n, rrow, rc0, rc1, r_n


@nb.njit(cache=True, nogil=True)
def window_coverage(xs, ys, ring_off, ring_hole, tc, ta, tf, te, row0, col0, nrows, ncols, exact64):
    """Dense coverage of ONE geometry on a window of the grid, without the GIL.

    Parameters
    ----------
    xs, ys : float64 arrays
        Vertex coordinates of the geometry's rings in the grid CRS (rings closed, each
        polygon's exterior before its holes).
    ring_off, ring_hole : as for :func:`coverage_chunk` (one geometry's rings only).
    tc, ta, tf, te : float
        Grid transform (x = tc + ta·col, y = tf + te·row).
    row0, col0, nrows, ncols : int
        The window: grid rows ``row0 .. row0 + nrows``, columns ``col0 .. col0 + ncols``.
        Parts of the geometry outside the window count nothing (pixels outside dropped).
    exact64 : bool
        float64 fractions instead of exactextract's float32 rounding.

    Returns
    -------
    float64 array (nrows, ncols)
        Fraction of each pixel's area inside the geometry (pixel units, 0..1) — the same
        numbers :func:`coverage_chunk` gives for these pixels.
    """
    out = np.zeros((nrows, ncols), dtype=np.float64)
    n = xs.shape[0]
    cells = nrows * ncols
    if n == 0 or cells == 0:
        return out
    xw = col0 * ta
    yw = row0 * te
    us = np.empty(n, dtype=np.float64)
    vs = np.empty(n, dtype=np.float64)
    for i in range(n):  # local to the window as in coverage_chunk (keeps ~1e-16 of the window)
        us[i] = ((xs[i] - tc) - xw) / ta
        vs[i] = ((ys[i] - tf) - yw) / te
    prow = np.empty(cells, dtype=np.int32)
    pcol = np.empty(cells, dtype=np.int32)
    pfrac = np.empty(cells, dtype=np.float64)
    rrow = np.empty(cells, dtype=np.int32)
    rc0 = np.empty(cells, dtype=np.int32)
    rc1 = np.empty(cells, dtype=np.int32)
    npart, nrun = _geometry_coverage(us, vs, ring_off, ring_hole, 0, ring_hole.shape[0], nrows, ncols,
                                     MAX_WINDOW_CELLS, exact64, prow, pcol, pfrac, 0, cells,
                                     rrow, rc0, rc1, 0, cells, 0, 0)
    if npart < 0:
        raise ValueError("coverage buffer overflow (self-overlapping geometry?)")
    for i in range(npart):
        out[prow[i], pcol[i]] = pfrac[i]
    for i in range(nrun):
        for c in range(rc0[i], rc1[i]):
            out[rrow[i], c] = 1.0
    return out


@nb.njit(cache=True)
def gather_slots(off, n_used, zone_of_slot, rows, a, b):
    """Pack the used part of every per-geometry slot into plain COO arrays.

    Returns (zone int32, row int32, a, b) in slot order.
    """
    ng = n_used.shape[0]
    total = 0
    for g in range(ng):
        total += n_used[g]
    zone = np.empty(total, dtype=np.int32)
    row = np.empty(total, dtype=np.int32)
    a_out = np.empty(total, dtype=a.dtype)
    b_out = np.empty(total, dtype=b.dtype)
    j = 0
    for g in range(ng):
        for i in range(off[g], off[g] + n_used[g]):
            zone[j] = zone_of_slot[g]
            row[j] = rows[i]
            a_out[j] = a[i]
            b_out[j] = b[i]
            j += 1
    return zone, row, a_out, b_out


@nb.njit(cache=True)
def csr_scatter(pos, zone, row, a, b, out_zone, out_a, out_b):
    """Counting-sort step: put COO entries at ``pos[row]`` (advancing it) in the
    CSR-by-row output arrays. Call once per piece, pieces in order (stable)."""
    for i in range(row.shape[0]):
        r = row[i]
        j = pos[r]
        out_zone[j] = zone[i]
        out_a[j] = a[i]
        out_b[j] = b[i]
        pos[r] = j + 1


@nb.njit(cache=True, nogil=True)
def apply_rows(data, row0, nodata, use_nodata, p_ptr, p_zone, p_col, p_frac,
               r_ptr, r_zone, r_c0, r_c1, sums, covs, pixcov):
    """Add rows ``row0 .. row0 + data.shape[0]`` of a raster to per-zone sums.

    Parameters
    ----------
    data : 2-D array (rows of the raster, full width)
    row0 : int
        Grid row of ``data[0]``.
    nodata, use_nodata : float, bool
        Pixels equal to ``nodata`` (if ``use_nodata``) or NaN are skipped.
    p_ptr .. r_c1 : the weights (CSR by grid row)
    sums, covs : float64 arrays (n_zones), updated in place
        Σ value × fraction and Σ fraction of valid pixels (pixels).
    pixcov : float64 2-D array like ``data`` or shape (0, 0)
        If not empty, Σ over zones of each pixel's fraction is added to it (for the
        mass balance).
    """
    nrow = data.shape[0]
    track = pixcov.shape[0] > 0
    for rr in range(nrow):
        r = row0 + rr
        for k in range(p_ptr[r], p_ptr[r + 1]):
            c = p_col[k]
            f = np.float64(p_frac[k])
            if track:
                pixcov[rr, c] += f
            v = data[rr, c]
            if v != v or (use_nodata and v == nodata):
                continue
            z = p_zone[k]
            sums[z] += np.float64(v) * f
            covs[z] += f
        for k in range(r_ptr[r], r_ptr[r + 1]):
            s = 0.0
            n = 0
            for c in range(r_c0[k], r_c1[k]):
                if track:
                    pixcov[rr, c] += 1.0
                v = data[rr, c]
                if v != v or (use_nodata and v == nodata):
                    continue
                s += np.float64(v)
                n += 1
            z = r_zone[k]
            sums[z] += s
            covs[z] += n


@nb.njit(cache=True, nogil=True)
def balance_rows(data, nodata, use_nodata, pixcov, tol):
    """Raster total inside the zones' union and overlap of the zones, for some rows.

    Returns
    -------
    (inside, overlap_px, covered_px, total)
        ``inside`` = Σ value × min(coverage, 1) over valid pixels (coverage above 1 + tol
        counts once); ``overlap_px`` = Σ (coverage − 1) where coverage > 1 + tol (pixels
        counted twice or more); ``covered_px`` = Σ min(coverage, 1); ``total`` = Σ value
        of all valid pixels.
    """
    inside = 0.0
    overlap = 0.0
    covered = 0.0
    total = 0.0
    for r in range(data.shape[0]):
        for c in range(data.shape[1]):
            cov = pixcov[r, c]
            if cov > 1.0 + tol:
                overlap += cov - 1.0
                cov = 1.0
            covered += cov
            v = data[r, c]
            if v != v or (use_nodata and v == nodata):
                continue
            total += np.float64(v)
            if cov != 0.0:
                inside += np.float64(v) * cov
    return inside, overlap, covered, total
