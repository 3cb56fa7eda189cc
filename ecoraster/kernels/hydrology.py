"""Hydrology kernels on a whole DEM held in memory (pure numba: arrays in, arrays out; no I/O).

The steps InVEST 3.20 SDR takes (through pygeoprocessing's routing), re-implemented from their
documented behaviour so that ``soil_retention`` method ``invest_sdr`` reproduces InVEST:

- :func:`fill_depressions`: every undrained depression raised to its spill height. Drains are
  pixels on the raster edge or next to a nodata pixel (NaN), as in ``pygeoprocessing.routing.
  fill_pits``. Done by priority flood (Barnes, Lehman & Mulla 2014, "Priority-Flood", with the
  plain-queue shortcut for pit pixels), which gives the same filled surface.
- :func:`slope_percent`: Horn's 3 × 3 gradient in percent with pygeoprocessing's rules for
  missing neighbours (``calculate_slope``).
- :func:`flow_dir_mfd`: multiple flow direction. Each downhill neighbour gets a share
  proportional to its drop (diagonals divided by √2), stored as eight 4-bit integer weights
  ``int(0.5 + 15·share)`` packed in a uint32 (bits 4i..4i+3 for direction i; i = 0 east, then
  counter-clockwise: NE, N, NW, W, SW, S, SE). Flats drain toward the nearest pixel of the
  flat with a downhill neighbour (distance in pixel steps, diagonals √2), or, when the flat
  has none, toward the raster edge / nodata (``flow_dir_mfd``).
- :func:`flow_accumulation_mfd`: upslope pixel count including the pixel itself, each pixel
  passing its accumulation on in proportion to its integer weights.
- :func:`extract_streams_mfd`: streams traced upstream from outlets through pixels whose
  accumulation reaches the threshold (``extract_streams_mfd`` with a trace proportion).

Streaming and memory: the routing of a catchment depends on pixels arbitrarily far away, so
these kernels take whole arrays in compact types (DEM float32, directions uint32, in-degree
uint8, accumulation float64) and keep their own work lists small: pits are filled from a
binary heap of the current flood front, accumulation follows a topological order by
in-degree counting with a stack of ready pixels (no queue of all pixels). The service orders
the steps so that at most about 13 bytes per pixel are held at once, and spills every result
before the block-by-block writing (``docs/soil_retention.md``, ``bench/README.md``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: Neighbour offsets of direction i (east, then counter-clockwise), as pygeoprocessing.
ROW_OFFSETS = np.array([0, -1, -1, -1, 0, 1, 1, 1], dtype=np.int64)
COL_OFFSETS = np.array([1, 1, 0, -1, -1, -1, 0, 1], dtype=np.int64)
SQRT2 = math.sqrt(2.0)
SQRT2_INV = 1.0 / math.sqrt(2.0)
#: Value of unset / nodata pixels in the stream raster.
STREAM_NODATA = np.uint8(255)


# ------------------------------------------------------------------------------------------
# small growable containers (numba)
# ------------------------------------------------------------------------------------------

@njit(cache=True)
def _grow_i64(a, n):
    b = np.empty(max(2 * a.size, 1024), dtype=np.int64)
    b[:n] = a[:n]
    return b


@njit(cache=True)
def _grow_i32(a, n):
    b = np.empty(max(a.size + a.size // 2, 1024), dtype=np.int32)
    b[:n] = a[:n]
    return b


@njit(cache=True)
def _heap_push(heap, n, flat_dem, idx):
    """Push pixel ``idx`` on a binary min-heap of pixel indices (int32) ordered by
    ``flat_dem[idx]``, used length n; returns (heap, n + 1). 4 bytes per entry: the key is read
    from the DEM, whose value does not change while the pixel is on the heap."""
    if n == heap.size:
        heap = _grow_i32(heap, n)
    i = n
    heap[i] = idx
    key = flat_dem[idx]
    while i > 0:
        parent = (i - 1) >> 1
        if flat_dem[heap[parent]] <= key:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = idx
    return heap, n + 1


@njit(cache=True)
def _heap_pop(heap, n, flat_dem):
    """Pop the lowest pixel; returns (idx, n − 1)."""
    top = heap[0]
    n -= 1
    last = heap[n]
    key = flat_dem[last]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        small = left
        if left + 1 < n and flat_dem[heap[left + 1]] < flat_dem[heap[left]]:
            small = left + 1
        if key <= flat_dem[heap[small]]:
            break
        heap[i] = heap[small]
        i = small
    if n > 0:
        heap[i] = last
    return top, n


# ------------------------------------------------------------------------------------------
# pit filling
# ------------------------------------------------------------------------------------------

@njit(cache=True)
def fill_depressions(dem):
    """Fill every depression of ``dem`` (2-D C-contiguous float, NaN = nodata; < 2³¹ pixels) to
    its spill height, in place.

    A depression is a connected region that drains neither to the raster edge nor to a nodata
    pixel; after the call its pixels equal the height of its lowest pour point, so the
    surface drains everywhere (flat where filled). Returns the number of raised pixels.
    """
    rows, cols = dem.shape
    flat_dem = dem.reshape(rows * cols)  # a view: the heap reads its keys here
    closed = np.zeros((rows, cols), dtype=np.uint8)
    heap = np.empty(4096, dtype=np.int32)
    n = 0
    pit = np.empty(4096, dtype=np.int32)
    for r in range(rows):
        for c in range(cols):
            z = dem[r, c]
            if math.isnan(z):
                continue
            seed = r == 0 or c == 0 or r == rows - 1 or c == cols - 1
            if not seed:
                for i in range(8):
                    if math.isnan(dem[r + ROW_OFFSETS[i], c + COL_OFFSETS[i]]):
                        seed = True
                        break
            if seed:
                closed[r, c] = 1
                heap, n = _heap_push(heap, n, flat_dem, r * cols + c)
    raised = 0
    while n > 0:
        idx, n = _heap_pop(heap, n, flat_dem)
        # plain FIFO of pit pixels at the spill height (Barnes et al. 2014, Algorithm 3)
        head = 0
        tail = 0
        pit[tail] = idx
        tail += 1
        while head < tail:
            p = pit[head]
            head += 1
            r, c = p // cols, p % cols
            zp = dem[r, c]
            for i in range(8):
                rn, cn = r + ROW_OFFSETS[i], c + COL_OFFSETS[i]
                if rn < 0 or rn >= rows or cn < 0 or cn >= cols or closed[rn, cn]:
                    continue
                zn = dem[rn, cn]
                if math.isnan(zn):
                    continue
                closed[rn, cn] = 1
                if zn <= zp:
                    if zn < zp:
                        dem[rn, cn] = zp
                        raised += 1
                    if tail == pit.size:
                        if head > 0:  # compact the FIFO before growing it
                            pit[:tail - head] = pit[head:tail]
                            tail -= head
                            head = 0
                        if tail == pit.size:
                            pit = _grow_i32(pit, tail)
                    pit[tail] = rn * cols + cn
                    tail += 1
                else:
                    heap, n = _heap_push(heap, n, flat_dem, rn * cols + cn)
    return raised


# ------------------------------------------------------------------------------------------
# slope
# ------------------------------------------------------------------------------------------

@njit(cache=True)
def _valid(dem, r, c):
    rows, cols = dem.shape
    return 0 <= r < rows and 0 <= c < cols and not math.isnan(dem[r, c])


@njit(cache=True)
def slope_percent(dem, cell_x, cell_y, out):
    """Horn's slope, 100·√((dz/dx)² + (dz/dy)²) [%], for each valid pixel; NaN elsewhere.

    Neighbours off the raster or nodata are handled as ``pygeoprocessing.calculate_slope``:
    for each of the three rows (columns) of the stencil, the pair across the centre is used if
    both are valid (weight 2 for corners' rows, 4 for the middle), else one corner and the
    middle (weight 1), else one corner and the centre × √2 (weight 1); the middle pair falls
    back to one side and the centre (weight 2). ``cell_x``, ``cell_y``: pixel size in metres.
    """
    rows, cols = dem.shape
    s2 = 2.0 ** 0.5
    for r in range(rows):
        for c in range(cols):
            e = dem[r, c]
            if math.isnan(e):
                out[r, c] = np.nan
                continue
            a = dem[r - 1, c - 1] if _valid(dem, r - 1, c - 1) else np.nan
            b = dem[r - 1, c] if _valid(dem, r - 1, c) else np.nan
            cc = dem[r - 1, c + 1] if _valid(dem, r - 1, c + 1) else np.nan
            d = dem[r, c - 1] if _valid(dem, r, c - 1) else np.nan
            f = dem[r, c + 1] if _valid(dem, r, c + 1) else np.nan
            g = dem[r + 1, c - 1] if _valid(dem, r + 1, c - 1) else np.nan
            h = dem[r + 1, c] if _valid(dem, r + 1, c) else np.nan
            i = dem[r + 1, c + 1] if _valid(dem, r + 1, c + 1) else np.nan
            av, bv, cv = not math.isnan(a), not math.isnan(b), not math.isnan(cc)
            dv, fv = not math.isnan(d), not math.isnan(f)
            gv, hv, iv = not math.isnan(g), not math.isnan(h), not math.isnan(i)
            dzdx = 0.0
            xd = 0
            # top row, x direction
            if av and cv:
                dzdx += a - cc
                xd += 2
            elif av and bv:
                dzdx += a - b
                xd += 1
            elif bv and cv:
                dzdx += b - cc
                xd += 1
            elif av:
                dzdx += (a - e) * s2
                xd += 1
            elif cv:
                dzdx += (e - cc) * s2
                xd += 1
            if dv and fv:
                dzdx += 2 * (d - f)
                xd += 4
            elif dv:
                dzdx += 2 * (d - e)
                xd += 2
            elif fv:
                dzdx += 2 * (e - f)
                xd += 2
            if gv and iv:
                dzdx += g - i
                xd += 2
            elif gv and hv:
                dzdx += g - h
                xd += 1
            elif hv and iv:
                dzdx += h - i
                xd += 1
            elif gv:
                dzdx += (g - e) * s2
                xd += 1
            elif iv:
                dzdx += (e - i) * s2
                xd += 1
            dzdy = 0.0
            yd = 0
            if av and gv:
                dzdy += a - g
                yd += 2
            elif av and dv:
                dzdy += a - d
                yd += 1
            elif dv and gv:
                dzdy += d - g
                yd += 1
            elif av:
                dzdy += (a - e) * s2
                yd += 1
            elif gv:
                dzdy += (e - g) * s2
                yd += 1
            if bv and hv:
                dzdy += 2 * (b - h)
                yd += 4
            elif bv:
                dzdy += 2 * (b - e)
                yd += 2
            elif hv:
                dzdy += 2 * (e - h)
                yd += 2
            if cv and iv:
                dzdy += cc - i
                yd += 2
            elif cv and fv:
                dzdy += cc - f
                yd += 1
            elif fv and iv:
                dzdy += f - i
                yd += 1
            elif cv:
                dzdy += (cc - e) * s2
                yd += 1
            elif iv:
                dzdy += (e - i) * s2
                yd += 1
            gx = dzdx / (xd * cell_x) if xd else 0.0
            gy = dzdy / (yd * cell_y) if yd else 0.0
            out[r, c] = 100.0 * math.sqrt(gx * gx + gy * gy)


# ------------------------------------------------------------------------------------------
# MFD flow direction
# ------------------------------------------------------------------------------------------

@njit(cache=True)
def _pack(weights, total):
    """Eight shares → eight 4-bit integers int(0.5 + 15·w/total) packed in a uint32."""
    packed = np.uint32(0)
    for i in range(8):
        q = np.uint32(int(0.5 + weights[i] / total * 15.0))
        packed |= q << np.uint32(4 * i)
    return packed


@njit(cache=True)
def flow_dir_mfd(dem):
    """MFD flow directions of a drained DEM (2-D float, NaN = nodata) → uint32 (0 = none).

    Call :func:`fill_depressions` first. Shares are the drops to lower neighbours (diagonals
    ÷ √2); flats are routed by distance to their drains (see module docstring).
    """
    rows, cols = dem.shape
    out = np.zeros((rows, cols), dtype=np.uint32)
    w = np.zeros(8, dtype=np.float64)
    wn = np.zeros(8, dtype=np.float64)
    for r in range(rows):
        for c in range(cols):
            z = dem[r, c]
            if math.isnan(z):
                continue
            total = 0.0
            for i in range(8):
                w[i] = 0.0
                rn, cn = r + ROW_OFFSETS[i], c + COL_OFFSETS[i]
                if rn < 0 or rn >= rows or cn < 0 or cn >= cols:
                    continue
                zn = dem[rn, cn]
                if math.isnan(zn):
                    continue
                drop = z - zn
                if drop > 0.0:
                    if i & 1:
                        drop *= SQRT2_INV
                    w[i] = drop
                    total += drop
            if total > 0.0:
                out[r, c] = _pack(w, total)
    # flats: pixels without a downhill neighbour. While a flat is routed, the distance of each of
    # its non-drain pixels to the nearest drain is kept in ``out`` itself (float32 bits; those
    # pixels have no direction yet), so no full-size distance array is needed.
    flat = np.zeros((rows, cols), dtype=np.uint8)  # 1 = in a searched flat, 2 = drain of its flat
    dist = out.view(np.float32)
    region = np.empty(1024, dtype=np.int64)
    drains = np.empty(1024, dtype=np.int64)
    nodata_drains = np.empty(1024, dtype=np.int64)
    queue = np.empty(1024, dtype=np.int64)
    for r0 in range(rows):
        for c0 in range(cols):
            if out[r0, c0] != 0 or flat[r0, c0] or math.isnan(dem[r0, c0]):
                continue
            z = dem[r0, c0]
            # 1. the flat region (8-connected pixels of height z) and its drains
            n_drain = 0
            n_nodrain = 0
            region[0] = r0 * cols + c0
            n_region = 1
            flat[r0, c0] = 1
            k = 0
            while k < n_region:
                p = region[k]
                k += 1
                r, c = p // cols, p % cols
                down = 0.0
                nod = 0.0
                for i in range(8):
                    rn, cn = r + ROW_OFFSETS[i], c + COL_OFFSETS[i]
                    if rn < 0 or rn >= rows or cn < 0 or cn >= cols or math.isnan(dem[rn, cn]):
                        nod += SQRT2_INV if i & 1 else 1.0
                        continue
                    zn = dem[rn, cn]
                    if zn > z:
                        continue
                    if zn == z:
                        if flat[rn, cn] == 0:
                            if n_region == region.size:
                                region = _grow_i64(region, n_region)
                            region[n_region] = rn * cols + cn
                            n_region += 1
                            flat[rn, cn] = 1
                        continue
                    down += 1.0
                if down > 0.0:
                    if n_drain == drains.size:
                        drains = _grow_i64(drains, n_drain)
                    drains[n_drain] = p
                    n_drain += 1
                elif nod > 0.0:
                    if n_nodrain == nodata_drains.size:
                        nodata_drains = _grow_i64(nodata_drains, n_nodrain)
                    nodata_drains[n_nodrain] = p
                    n_nodrain += 1
            # 2. drains keep their own direction (downhill, else toward edge / nodata); the
            #    other pixels of the flat start at an infinite distance
            use_nodata = n_drain == 0
            nd = n_nodrain if use_nodata else n_drain
            src = nodata_drains if use_nodata else drains
            if queue.size < max(nd, n_region):
                queue = np.empty(2 * max(nd, n_region), dtype=np.int64)
            for j in range(nd):
                p = src[j]
                flat[p // cols, p % cols] = 2
                queue[j] = p
            for j in range(n_region):
                p = region[j]
                r, c = p // cols, p % cols
                if flat[r, c] != 2:
                    dist[r, c] = np.inf
                elif use_nodata:
                    total = 0.0
                    for i in range(8):
                        wn[i] = 0.0
                        rn, cn = r + ROW_OFFSETS[i], c + COL_OFFSETS[i]
                        if rn < 0 or rn >= rows or cn < 0 or cn >= cols or math.isnan(dem[rn, cn]):
                            wn[i] = SQRT2_INV if i & 1 else 1.0
                            total += wn[i]
                    out[r, c] = _pack(wn, total)
            # 3. distance to the nearest drain within the flat (label-correcting FIFO)
            head = 0
            tail = nd
            while head != tail:
                p = queue[head % queue.size]
                head += 1
                r, c = p // cols, p % cols
                dp = 0.0 if flat[r, c] == 2 else dist[r, c]
                for i in range(8):
                    rn, cn = r + ROW_OFFSETS[i], c + COL_OFFSETS[i]
                    if rn < 0 or rn >= rows or cn < 0 or cn >= cols or dem[rn, cn] != z or flat[rn, cn] == 2:
                        continue
                    d = np.float32(dp + (SQRT2 if i & 1 else 1.0))
                    if dist[rn, cn] > d:
                        dist[rn, cn] = d
                        if tail - head == queue.size:
                            q2 = np.empty(2 * queue.size, dtype=np.int64)
                            for t in range(head, tail):
                                q2[t - head] = queue[t % queue.size]
                            tail -= head
                            head = 0
                            queue = q2
                        queue[tail % queue.size] = rn * cols + cn
                        tail += 1
            # 4. other flat pixels flow to same-height neighbours closer to a drain (directions
            #    computed for the whole flat first, then written over the distances)
            newdir = np.zeros(n_region, dtype=np.uint32)
            for j in range(n_region):
                p = region[j]
                r, c = p // cols, p % cols
                if flat[r, c] == 2:
                    continue
                dp = dist[r, c]
                total = 0.0
                for i in range(8):
                    w[i] = 0.0
                    rn, cn = r + ROW_OFFSETS[i], c + COL_OFFSETS[i]
                    if rn < 0 or rn >= rows or cn < 0 or cn >= cols or dem[rn, cn] != z:
                        continue
                    dn = 0.0 if flat[rn, cn] == 2 else dist[rn, cn]
                    if dn < dp:
                        w[i] = SQRT2_INV if i & 1 else 1.0
                        total += w[i]
                if total > 0.0:
                    newdir[j] = _pack(w, total)
            for j in range(n_region):
                p = region[j]
                if flat[p // cols, p % cols] != 2:
                    out[p // cols, p % cols] = newdir[j]
    return out


# ------------------------------------------------------------------------------------------
# MFD flow accumulation and streams
# ------------------------------------------------------------------------------------------

@njit(cache=True)
def _share_sum(packed):
    s = 0
    for i in range(8):
        s += (packed >> np.uint32(4 * i)) & np.uint32(0xF)
    return s


@njit(cache=True)
def flow_accumulation_mfd(flow_dir):
    """Upslope area in pixels (the pixel itself included) of MFD directions → float64.

    A pixel passes its accumulation to each neighbour in proportion to that direction's
    4-bit weight over the sum of its weights; flow off the raster or into pixels without
    directions is lost. Pixels without directions get NaN. Topological order by in-degree
    counting (uint8 per pixel) with a stack of ready pixels.
    """
    rows, cols = flow_dir.shape
    indeg = np.zeros((rows, cols), dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            fd = flow_dir[r, c]
            if fd == 0:
                continue
            for i in range(8):
                if (fd >> np.uint32(4 * i)) & np.uint32(0xF):
                    rn, cn = r + ROW_OFFSETS[i], c + COL_OFFSETS[i]
                    if 0 <= rn < rows and 0 <= cn < cols and flow_dir[rn, cn] != 0:
                        indeg[rn, cn] += 1
    acc = np.full((rows, cols), np.nan, dtype=np.float64)
    for r in range(rows):
        for c in range(cols):
            if flow_dir[r, c] != 0:
                acc[r, c] = 1.0
    stack = np.empty(4096, dtype=np.int64)
    for r0 in range(rows):
        for c0 in range(cols):
            if flow_dir[r0, c0] == 0 or indeg[r0, c0] != 0:
                continue
            indeg[r0, c0] = 255  # done marker
            stack[0] = r0 * cols + c0
            top = 1
            while top > 0:
                top -= 1
                p = stack[top]
                r, c = p // cols, p % cols
                fd = flow_dir[r, c]
                total = float(_share_sum(fd))
                a = acc[r, c]
                for i in range(8):
                    wi = (fd >> np.uint32(4 * i)) & np.uint32(0xF)
                    if wi == 0:
                        continue
                    rn, cn = r + ROW_OFFSETS[i], c + COL_OFFSETS[i]
                    if rn < 0 or rn >= rows or cn < 0 or cn >= cols or flow_dir[rn, cn] == 0:
                        continue
                    acc[rn, cn] += a * float(wi) / total
                    indeg[rn, cn] -= 1
                    if indeg[rn, cn] == 0:
                        indeg[rn, cn] = 255
                        if top == stack.size:
                            stack = _grow_i64(stack, top)
                        stack[top] = rn * cols + cn
                        top += 1
    return acc


@njit(cache=True)
def extract_streams_mfd(acc, flow_dir, threshold, trace_proportion):
    """Stream pixels (1), land (0), nodata (255) from MFD accumulation and directions.

    From every outlet (accumulation ≥ ``threshold`` and a direction off the raster or into
    nodata) streams are traced upstream through pixels whose accumulation reaches the
    threshold; pixels reaching ``trace_proportion × threshold`` are followed tentatively and
    become stream only if a full-threshold pixel lies upstream of them.
    """
    rows, cols = acc.shape
    out = np.full((rows, cols), STREAM_NODATA, dtype=np.uint8)
    trace = trace_proportion * threshold
    open_q = np.empty(1024, dtype=np.int64)
    back = np.empty(1024, dtype=np.int64)
    for r0 in range(rows):
        for c0 in range(cols):
            a0 = acc[r0, c0]
            if math.isnan(a0) or out[r0, c0] != STREAM_NODATA:
                continue
            out[r0, c0] = 0
            if a0 < threshold:
                continue
            fd = flow_dir[r0, c0]
            outlet = False
            for i in range(8):
                if ((fd >> np.uint32(4 * i)) & np.uint32(0xF)) == 0:
                    continue
                rn, cn = r0 + ROW_OFFSETS[i], c0 + COL_OFFSETS[i]
                if rn < 0 or rn >= rows or cn < 0 or cn >= cols or math.isnan(acc[rn, cn]):
                    outlet = True
                    break
            if not outlet:
                continue
            out[r0, c0] = 1
            head = 0
            tail = 1
            open_q[0] = r0 * cols + c0
            while head < tail:
                p = open_q[head]
                head += 1
                r, c = p // cols, p % cols
                for i in range(8):
                    rs, cs = r + ROW_OFFSETS[i], c + COL_OFFSETS[i]
                    if rs < 0 or rs >= rows or cs < 0 or cs >= cols:
                        continue
                    fds = flow_dir[rs, cs]
                    if fds == 0:
                        continue
                    inflow = (i + 4) % 8  # direction from (rs, cs) back to (r, c)
                    if ((fds >> np.uint32(4 * inflow)) & np.uint32(0xF)) == 0:
                        continue
                    sv = out[rs, cs]
                    if sv == 1 or sv == 2:
                        continue
                    a = acc[rs, cs]
                    if a >= threshold:
                        out[rs, cs] = 1
                        if tail == open_q.size:
                            open_q = _grow_i64(open_q, tail)
                        open_q[tail] = rs * cols + cs
                        tail += 1
                        # pixels marked tentative downstream of this one become stream
                        nb = 1
                        back[0] = rs * cols + cs
                        while nb > 0:
                            nb -= 1
                            b = back[nb]
                            rb, cb = b // cols, b % cols
                            fdb = flow_dir[rb, cb]
                            for j in range(8):
                                if ((fdb >> np.uint32(4 * j)) & np.uint32(0xF)) == 0:
                                    continue
                                rj, cj = rb + ROW_OFFSETS[j], cb + COL_OFFSETS[j]
                                if rj < 0 or rj >= rows or cj < 0 or cj >= cols:
                                    continue
                                if out[rj, cj] == 2:
                                    out[rj, cj] = 1
                                    if nb == back.size:
                                        back = _grow_i64(back, nb)
                                    back[nb] = rj * cols + cj
                                    nb += 1
                    elif a >= trace:
                        out[rs, cs] = 2
                        if tail == open_q.size:
                            open_q = _grow_i64(open_q, tail)
                        open_q[tail] = rs * cols + cs
                        tail += 1
    for r in range(rows):
        for c in range(cols):
            if out[r, c] == 2:
                out[r, c] = 0
    return out
