"""Optical remote sensing → masked reflectance → NDVI, FVC, LAI and annual composites.

Readers return an :class:`xarray.Dataset` with ``red``, ``nir`` (surface reflectance,
unitless, float32) and ``valid`` (bool), lazily on the source grid or a target
:class:`~ecoraster.grid.Grid`:

- :func:`read_landsat_c2l2` (Collection 2 Level-2: scale/offset from the MTL, QA_PIXEL bits)
- :func:`read_sentinel2_l2a` (SCL classes, BOA_ADD_OFFSET −1000 from baseline 04.00)
- :func:`read_modis_sr` (MOD09/MYD09 GQ as a 3-band GeoTIFF red, NIR, QC; ×1e-4)

Coefficients come from ``configs/parameters/optical.yaml`` and ``lai_ndvi.yaml``. FVC → LAI
is the one relation of :mod:`ecoraster.kernels.vegetation` (FVC capped at 0.95, LAI ≤ 6.0).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import dask.array as da
import numpy as np
import rasterio
import xarray as xr

from .. import yamlio
from ..errors import ConfigError, InputDataError, MissingFileError
from ..grid import DEFAULT_CHUNK, Grid, align_to, inspect_source
from ..engine import map_blocks, reduce_blocks
from ..kernels import ingest_optical as kern
from ..kernels.vegetation import lai_from_fvc
from ..resources import config_path
from ._common import georef


def load_parameters(name: str = "optical") -> dict:
    """A parameter YAML of ``configs/parameters`` (``optical`` or ``lai_ndvi``), found through
    :func:`ecoraster.resources.config_path` and cached on the file's size and mtime."""
    path = config_path("parameters", f"{name}.yaml")
    st = path.stat()
    return _read_parameters(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def _read_parameters(path: str, _size: int, _mtime_ns: int) -> dict:
    return yamlio.read_mapping(path, field="parameters")


def _value(section: str, key: str):
    return load_parameters("optical")[section][key]["value"]


# ---------------------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------------------

def _aligned(path, grid: Grid | None, chunk: int, *, band: int = 1, nodata=None, dtype=None) -> xr.DataArray:
    info = inspect_source(path, band=band, nodata=nodata, field="optical")
    return align_to(info, grid or info.grid, "nearest", chunk=chunk, dtype=dtype)


def _dataset(red: da.Array, nir: da.Array, valid: da.Array, grid: Grid, attrs: dict) -> xr.Dataset:
    def wrap(arr, name, units):
        return georef(xr.DataArray(arr, dims=("y", "x"), name=name, attrs={"units": units}), grid)

    ds = xr.Dataset({"red": wrap(red, "red", "1"), "nir": wrap(nir, "nir", "1"), "valid": wrap(valid, "valid", "bool")})
    ds.attrs.update(attrs)
    return ds


def read_mtl(mtl_path: str | Path) -> dict:
    """A Landsat Collection 2 metadata file, ``*_MTL.txt`` (ODL text) or ``*_MTL.json``, as
    ``{group: {key: value}}`` (values as written, strings; the outer ``LANDSAT_METADATA_FILE``
    group removed). Both forms carry the same groups (USGS LSDS-1619, appendix "MTL")."""
    import json

    path = Path(mtl_path)
    if not path.is_file():
        raise MissingFileError(str(path), field="Landsat MTL")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            tree = json.loads(text)
        except ValueError as exc:
            raise InputDataError(f"{path}: not a JSON MTL ({exc})") from None
    else:
        tree, stack = {}, []
        node = tree
        for line in text.splitlines():
            key, sep, value = (part.strip() for part in line.partition("="))
            if not sep:
                continue
            if key == "GROUP":
                stack.append(node)
                node = node.setdefault(value, {})
            elif key == "END_GROUP":
                node = stack.pop() if stack else tree
            else:
                node[key] = value.strip('"')
    if not isinstance(tree, dict):
        raise InputDataError(f"{path}: not a Landsat MTL (top level is not a group)")
    if set(tree) == {"LANDSAT_METADATA_FILE"}:
        tree = tree["LANDSAT_METADATA_FILE"]
    return tree


def parse_mtl_scaling(mtl_path: str | Path, band: int) -> tuple[float, float]:
    """``REFLECTANCE_MULT_BAND_n`` / ``REFLECTANCE_ADD_BAND_n`` of the Level-2 SR group of a
    Landsat Collection 2 ``*_MTL.txt`` or ``*_MTL.json``."""
    tree = read_mtl(mtl_path)
    group = tree.get("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")
    body = group if isinstance(group, dict) else {k: v for k, v in tree.items() if not isinstance(v, dict)}
    mult, add = body.get(f"REFLECTANCE_MULT_BAND_{band}"), body.get(f"REFLECTANCE_ADD_BAND_{band}")
    try:
        return float(mult), float(add)
    except (TypeError, ValueError):
        raise InputDataError(f"{mtl_path}: no REFLECTANCE_MULT/ADD_BAND_{band} in the Level-2 SR group "
                             f"(found {mult!r} / {add!r})") from None


def _landsat_band_number(path: str | Path) -> int:
    m = re.search(r"_SR_B(\d+)", Path(path).name, re.I)
    if not m:
        raise InputDataError(f"{path}: not a Landsat C2 L2 surface-reflectance file name (*_SR_B<n>.TIF)")
    return int(m.group(1))


def read_landsat_c2l2(
    red_path: str | Path,
    nir_path: str | Path,
    qa_pixel_path: str | Path,
    *,
    mtl_path: str | Path | None = None,
    scaling: list[tuple[float, float]] | None = None,
    grid: Grid | None = None,
    mask_bits=None,
    chunk: int = DEFAULT_CHUNK,
) -> xr.Dataset:
    """Landsat Collection 2 Level-2 red/NIR reflectance with the QA_PIXEL mask.

    Reflectance = DN × mult + add (2.75e-5, −0.2 unless the MTL says otherwise). A pixel is
    valid when DN is in the valid range 7273..43636 and none of the QA_PIXEL ``mask_bits``
    (default 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 shadow, 5 snow) is set.
    Resampling to ``grid`` is nearest neighbour (keeps the mask exact). ``scaling``
    ([(mult, add) red, (mult, add) NIR], e.g. from a STAC Item's ``raster:bands``) wins over
    the MTL.
    """
    if scaling is None:
        default = (_value("landsat_c2l2", "reflectance_mult"), _value("landsat_c2l2", "reflectance_add"))
        scaling = [parse_mtl_scaling(mtl_path, _landsat_band_number(p)) if mtl_path is not None else default
                   for p in (red_path, nir_path)]
    scaling = [(float(m), float(a)) for m, a in scaling]
    bits = mask_bits if mask_bits is not None else _value("landsat_c2l2", "qa_pixel_mask_bits")
    bit_mask = int(sum(1 << int(b) for b in bits))
    lo, hi = _value("landsat_c2l2", "valid_dn_range")
    red_dn = _aligned(red_path, grid, chunk, nodata=0)
    target = grid or Grid.from_raster(red_path)
    nir_dn = _aligned(nir_path, target, chunk, nodata=0)
    qa = _aligned(qa_pixel_path, target, chunk, nodata=1)  # QA fill is bit 0 = 1
    clear = map_blocks(kern.bits_clear, qa.data, bit_mask=bit_mask, dtype=bool)
    valid = clear & (red_dn.data >= lo) & (red_dn.data <= hi) & (nir_dn.data >= lo) & (nir_dn.data <= hi)
    red = (red_dn.data.astype(np.float32) * np.float32(scaling[0][0]) + np.float32(scaling[0][1]))
    nir = (nir_dn.data.astype(np.float32) * np.float32(scaling[1][0]) + np.float32(scaling[1][1]))
    return _dataset(red, nir, valid, target, {"sensor": "Landsat C2 L2", "scaling": str(scaling),
                                              "qa_mask_bits": str(list(bits)), "source": str(red_path)})


def parse_s2_metadata(xml_path: str | Path) -> dict:
    """Processing baseline, quantification value and per-band BOA_ADD_OFFSET of an
    ``MTD_MSIL2A.xml`` (offsets keyed by band_id: B04 → 3, B08 → 7)."""
    text = Path(xml_path).read_text(encoding="utf-8", errors="replace")
    pb = re.search(r"<PROCESSING_BASELINE>\s*([0-9.]+)\s*<", text)
    q = re.search(r"<BOA_QUANTIFICATION_VALUE[^>]*>\s*([0-9.]+)\s*<", text)
    offsets = {int(b): float(v) for b, v in re.findall(r'<BOA_ADD_OFFSET band_id="(\d+)">\s*(-?[0-9.]+)\s*<', text)}
    if not pb:
        raise InputDataError(f"{xml_path}: no PROCESSING_BASELINE")
    return {"processing_baseline": pb.group(1), "quantification": float(q.group(1)) if q else None, "offsets": offsets}


def read_sentinel2_l2a(
    red_path: str | Path,
    nir_path: str | Path,
    scl_path: str | Path,
    *,
    processing_baseline: str | None = None,
    metadata_path: str | Path | None = None,
    boa_offsets: tuple[float, float] | None = None,
    keep_scl=None,
    grid: Grid | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> xr.Dataset:
    """Sentinel-2 L2A B04/B08 reflectance with the scene classification (SCL) mask.

    Reflectance = (DN + BOA_ADD_OFFSET) / 10000; the offset is −1000 from processing
    baseline 04.00 (Jan 2022) and 0 before. Give ``metadata_path`` (MTD_MSIL2A.xml) or
    ``processing_baseline``; without either the offset is ambiguous and a
    :class:`ConfigError` is raised. Valid: DN > 0 and SCL in ``keep_scl`` (default 4, 5, 6;
    add 7 to keep "unclassified"). SCL (20 m) is resampled nearest onto the band grid.
    ``boa_offsets`` (red, NIR in DN, e.g. from a STAC Item's ``raster:bands``) wins over both.
    """
    quant = float(_value("sentinel2_l2a", "quantification_value"))
    if boa_offsets is not None:
        offsets = tuple(float(o) for o in boa_offsets)
    elif metadata_path is not None:
        meta = parse_s2_metadata(metadata_path)
        processing_baseline = meta["processing_baseline"]
        quant = meta["quantification"] or quant
        offsets = (meta["offsets"].get(3, 0.0), meta["offsets"].get(7, 0.0))
    elif processing_baseline is not None:
        new = tuple(int(x) for x in processing_baseline.split(".")) >= (4, 0)
        off = float(_value("sentinel2_l2a", "boa_add_offset_pb0400")) if new else 0.0
        offsets = (off, off)
    else:
        raise ConfigError(f"{red_path}: give processing_baseline or metadata_path; the BOA offset "
                          "(−1000 from baseline 04.00) cannot be guessed")
    keep = keep_scl if keep_scl is not None else _value("sentinel2_l2a", "scl_keep")
    keep_lut = np.zeros(256, dtype=np.bool_)
    keep_lut[np.asarray(keep, dtype=int)] = True
    red_dn = _aligned(red_path, grid, chunk, nodata=0)
    target = grid or Grid.from_raster(red_path)
    nir_dn = _aligned(nir_path, target, chunk, nodata=0)
    scl = _aligned(scl_path, target, chunk, nodata=0)
    valid = map_blocks(kern.class_in_set, scl.data, keep_lut=keep_lut, dtype=bool) & (red_dn.data > 0) & (nir_dn.data > 0)
    red = (red_dn.data.astype(np.float32) + np.float32(offsets[0])) / np.float32(quant)
    nir = (nir_dn.data.astype(np.float32) + np.float32(offsets[1])) / np.float32(quant)
    return _dataset(red, nir, valid, target, {"sensor": "Sentinel-2 L2A", "processing_baseline": processing_baseline,
                                              "boa_add_offset": str(offsets), "scl_keep": str(list(keep)),
                                              "source": str(red_path)})


def read_modis_sr(
    path: str | Path,
    *,
    red_band: int = 1,
    nir_band: int = 2,
    qc_band: int = 3,
    accept_modland=(0,),
    grid: Grid | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> xr.Dataset:
    """MODIS 250 m surface reflectance (MOD09GQ/MYD09GQ) from a red/NIR/QC GeoTIFF.

    Reflectance = DN × 1e-4. Valid: DN in −100..16000 (not the fill −28672) and QC bits
    0–1 (MODLAND QA) in ``accept_modland`` (0 = ideal quality; add 1 to accept "less than
    ideal").
    """
    fill = _value("modis_sr", "fill_value")
    scale = np.float32(_value("modis_sr", "scale"))
    lo, hi = _value("modis_sr", "valid_dn_range")
    red_dn = _aligned(path, grid, chunk, band=red_band, nodata=fill)
    target = grid or Grid.from_raster(path)
    nir_dn = _aligned(path, target, chunk, band=nir_band, nodata=fill)
    qc = _aligned(path, target, chunk, band=qc_band, nodata=fill)
    modland = qc.data.astype(np.int64) & 0b11
    ok_qc = da.isin(modland, list(accept_modland))
    valid = ok_qc & (red_dn.data >= lo) & (red_dn.data <= hi) & (nir_dn.data >= lo) & (nir_dn.data <= hi)
    return _dataset(red_dn.data.astype(np.float32) * scale, nir_dn.data.astype(np.float32) * scale, valid, target,
                    {"sensor": "MODIS SR", "source": str(path)})


# ---------------------------------------------------------------------------------------
# indices
# ---------------------------------------------------------------------------------------

def _like(ds_var: xr.DataArray, data, name: str, units: str, **attrs) -> xr.DataArray:
    out = ds_var.copy(data=data)
    out.name = name
    out.attrs = {"units": units, "nodata": float("nan"), **attrs}
    return out


def ndvi(ds: xr.Dataset) -> xr.DataArray:
    """NDVI (unitless, float32, NaN where invalid) of a reader's Dataset (Rouse et al. 1974)."""
    data = map_blocks(kern.ndvi_block, ds["red"].data, ds["nir"].data, ds["valid"].data)
    return _like(ds["red"], data, "ndvi", "1", source=ds.attrs.get("source", ""))


def savi(ds: xr.Dataset, soil_l: float | None = None) -> xr.DataArray:
    """SAVI with soil factor ``soil_l`` (default 0.5 from ``lai_ndvi.yaml``; Huete 1988)."""
    soil_l = float(load_parameters("lai_ndvi")["metric_savi"]["savi_l"]["value"] if soil_l is None else soil_l)
    data = map_blocks(kern.savi_block, ds["red"].data, ds["nir"].data, ds["valid"].data, soil_l=soil_l)
    return _like(ds["red"], data, "savi", "1", soil_l=soil_l)


def valid_share(ds_or_index) -> float:
    """Share (0..1) of valid pixels of a reader Dataset or of an index array (non-NaN)."""
    mask = ds_or_index["valid"] if isinstance(ds_or_index, xr.Dataset) else ds_or_index.notnull()
    return float(mask.mean().compute())


def fvc(
    ndvi_arr: xr.DataArray,
    *,
    classes: xr.DataArray | None = None,
    soil_percentile: float | None = None,
    veg_percentile: float | None = None,
    min_pixels: int = 100,
) -> tuple[xr.DataArray, dict]:
    """Fractional vegetation cover by the dimidiate pixel model.

    FVC = (NDVI − NDVIsoil) / (NDVIveg − NDVIsoil), clipped to 0..1 (Gutman & Ignatov
    1998), with NDVIsoil / NDVIveg the ``soil_percentile`` / ``veg_percentile`` (default
    5 / 95 from ``optical.yaml``) of the valid NDVI, over the whole scene or per ecosystem
    class when ``classes`` (uint8 GEP codes on the same grid, 0 = nodata) is given.
    Percentiles come from a 1e-4-wide NDVI histogram accumulated chunk by chunk (bounded
    memory). A class with fewer than ``min_pixels`` valid pixels uses the scene values.

    Returns
    -------
    (fvc, endmembers)
        float32 FVC (unitless, NaN nodata) and ``{"scene": (soil, veg), class: (soil, veg)}``.
    """
    p_soil = float(soil_percentile if soil_percentile is not None else _value("fvc", "soil_percentile"))
    p_veg = float(veg_percentile if veg_percentile is not None else _value("fvc", "veg_percentile"))
    if not 0 <= p_soil < p_veg <= 100:
        raise ConfigError(f"FVC percentiles soil {p_soil} / veg {p_veg}: need 0 ≤ soil < veg ≤ 100")
    if classes is not None and classes.shape != ndvi_arr.shape:
        raise InputDataError(f"classes {classes.shape} and NDVI {ndvi_arr.shape} are not on the same grid")
    cls = classes.data if classes is not None else da.zeros(ndvi_arr.shape, dtype=np.uint8, chunks=ndvi_arr.data.chunks)
    cls = cls.rechunk(ndvi_arr.data.chunks)
    class_index = np.full(256, -1, dtype=np.int64)
    codes = list(range(1, 256)) if classes is not None else [0]
    class_index[codes] = np.arange(len(codes))
    hist = reduce_blocks(kern.ndvi_histogram, ndvi_arr.data, cls, shape=(len(codes), kern.NDVI_BINS),
                         class_index=class_index, n_classes=len(codes)).compute()
    scene = hist.sum(axis=0)
    ends = {"scene": (kern.histogram_percentile(scene, p_soil), kern.histogram_percentile(scene, p_veg))}
    soil_lut = np.full(256, ends["scene"][0])
    veg_lut = np.full(256, ends["scene"][1])
    if classes is not None:
        soil_lut[0] = veg_lut[0] = np.nan
        for code, row in zip(codes, hist):
            if row.sum() >= min_pixels:
                ends[int(code)] = (kern.histogram_percentile(row, p_soil), kern.histogram_percentile(row, p_veg))
                soil_lut[code], veg_lut[code] = ends[int(code)]
    data = map_blocks(kern.dimidiate_fvc, ndvi_arr.data, cls, soil_lut=soil_lut, veg_lut=veg_lut)
    out = _like(ndvi_arr, data, "fvc", "1", soil_percentile=p_soil, veg_percentile=p_veg,
                method="dimidiate pixel model (Gutman & Ignatov 1998)")
    return out, ends


def lai(x: xr.DataArray, relation: str = "beer_lambert_fvc") -> xr.DataArray:
    """Leaf area index (m²/m²) from an index by a relation of ``configs/parameters/lai_ndvi.yaml``.

    ``metric_savi`` (x = SAVI, Allen et al. 2007 METRIC): LAI = −ln((a − x)/b)/c, clipped to
    [0, lai_max]. ``beer_lambert_fvc`` (x = FVC): the one FVC → LAI relation of
    :mod:`ecoraster.kernels.vegetation`, 1 − FVC = exp(−k·LAI) with k = c = 0.5 and FVC
    capped at fvc_max = 0.95 (LAI ≤ 6.0).
    """
    table = load_parameters("lai_ndvi")
    if relation not in table:
        raise ConfigError(f"LAI relation {relation!r}; known: {sorted(table)}")
    p = {k: float(v["value"]) for k, v in table[relation].items() if isinstance(v, dict)}
    if relation == "beer_lambert_fvc":
        data = map_blocks(lai_from_fvc, x.data.astype(np.float32), k=p["c"], fvc_max=p["fvc_max"])
    else:
        data = map_blocks(kern.lai_log_relation, x.data.astype(np.float32), a=p["a"], b=p["b"], c=p["c"],
                          lai_max=p["lai_max"])
    return _like(x, data, "lai", "m2/m2", relation=relation, source=table[relation]["a"]["source"])


# ---------------------------------------------------------------------------------------
# time series and composites
# ---------------------------------------------------------------------------------------

def read_time_series(
    path: str | Path,
    *,
    mask_path: str | Path | None = None,
    mask_values=(1,),
    undated: str = "error",
    chunk: int = DEFAULT_CHUNK,
) -> xr.DataArray:
    """A multi-band index GeoTIFF (one band per date, band description = ISO date) as a lazy
    ``(time, y, x)`` float32 array; pixels where ``mask_path`` (same band layout) has one of
    ``mask_values`` (e.g. clouds = 1) become NaN.

    ``undated``: ``"error"`` raises :class:`InputDataError` if a band has no date;
    ``"skip"`` leaves such bands out (listed in ``attrs["skipped_bands"]``).
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(str(path), field="time series")
    with rasterio.open(path) as src:
        descs, shape, count = src.descriptions, (src.height, src.width), src.count
        grid = Grid(src.crs, src.transform, shape)
        nodata = src.nodata
    bands, times, skipped = [], [], []
    for b, d in enumerate(descs, start=1):
        try:
            times.append(datetime.fromisoformat(d) if d else None)
        except ValueError:
            times.append(None)
        if times[-1] is None:
            times.pop()
            skipped.append(b)
        else:
            bands.append(b)
    if skipped and undated == "error":
        raise InputDataError(f"{path}: {len(skipped)} of {count} bands have no date in their description "
                             f"(first: band {skipped[0]}); pass undated='skip' to leave them out")
    if mask_path is not None:
        with rasterio.open(mask_path) as m:
            if m.count != count or (m.height, m.width) != shape:
                raise InputDataError(f"{mask_path}: {m.count} bands {m.height}x{m.width}; the series has {count} bands {shape}")
    layers = []
    for b in bands:
        arr = _band_reader(path, b, grid, chunk, nodata)
        if mask_path is not None:
            m = _band_reader(Path(mask_path), b, grid, chunk, None, dtype="uint8")
            arr = da.where(da.isin(m, list(mask_values)), np.float32(np.nan), arr)
        layers.append(arr)
    stack = da.stack(layers, axis=0)
    out = georef(xr.DataArray(stack, dims=("time", "y", "x"), coords={"time": np.array(times, dtype="datetime64[ns]")},
                              name=path.stem), grid)
    out.attrs = {"units": "1", "nodata": float("nan"), "source": str(path), "skipped_bands": skipped}
    return out


def _band_reader(path: Path, band: int, grid: Grid, chunk: int, nodata, dtype="float32") -> da.Array:
    nd = nodata if nodata is not None else (np.nan if dtype == "float32" else 255)
    arr = align_to(path, grid, "nearest", band=band, src_nodata=nd, dtype=dtype,
                   nodata=np.nan if dtype == "float32" else 255, chunk=chunk)
    return arr.data


def composite(
    stack: xr.DataArray,
    method: str = "max",
    *,
    year: int | None = None,
    min_valid_share: float = 0.0,
) -> tuple[xr.DataArray, dict]:
    """Per-pixel maximum-value or median composite over time (NaN = invalid).

    Scenes are first reported with their share of valid pixels; scenes with no valid pixel
    (or below ``min_valid_share``) are dropped, so a fully clouded or empty scene never
    reaches the composite. ``year`` keeps only that calendar year.

    Returns
    -------
    (composite, report)
        float32 (y, x) with ``attrs["n_scenes"]``; report ``{"scenes": [{"time", "valid_share"}],
        "dropped": [...], "used": n, "method": ...}``.
    """
    if method not in ("max", "median"):
        raise ConfigError(f"composite method {method!r}; use 'max' or 'median'")
    if year is not None:
        stack = stack.sel(time=stack.time.dt.year == year)
    if stack.sizes["time"] == 0:
        raise InputDataError(f"{stack.attrs.get('source', stack.name)}: no scene in year {year}")
    shares = stack.notnull().mean(dim=("y", "x")).compute().values
    scenes = [{"time": str(np.datetime_as_string(t, unit="s")), "valid_share": float(s)}
              for t, s in zip(stack.time.values, shares)]
    keep = (shares > 0) & (shares >= min_valid_share)
    report = {"method": method, "scenes": scenes, "dropped": [s["time"] for s, k in zip(scenes, keep) if not k],
              "used": int(keep.sum())}
    if not keep.any():
        raise InputDataError(f"{stack.attrs.get('source', stack.name)}: no scene has valid pixels")
    used = stack.isel(time=np.flatnonzero(keep)).chunk({"time": -1})
    data = used.data
    if method == "max":
        reduced = da.nanmax(data, axis=0)
    else:
        reduced = da.map_blocks(_nanmedian_time, data, drop_axis=0, dtype=np.float32)
    out = xr.DataArray(reduced.astype(np.float32), dims=("y", "x"), coords={"y": stack.y, "x": stack.x},
                       name=f"{stack.name}_{method}")
    if stack.rio.crs is not None:
        out = out.rio.write_crs(stack.rio.crs).rio.write_transform(stack.rio.transform())
    out.attrs = {"units": stack.attrs.get("units", "1"), "nodata": float("nan"), "n_scenes": report["used"],
                 "method": f"{method} composite"}
    return out, report


def _nanmedian_time(block: np.ndarray) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels → NaN
        return np.nanmedian(block, axis=0).astype(np.float32)
