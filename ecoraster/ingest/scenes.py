"""Raw optical products as analysts receive them → a recognised :class:`Scene` → a masked index.

::

    scene = recognise("LC08_L2SP_122033_20200801_20200807_02_T1/")   # or its MTL.txt / MTL.json
    result = scene_index(scene, "ndvi", grid=run_grid)               # refuses a mostly clouded scene
    write_scene_index(result, "ndvi_20200801.tif")

The sensor is recognised from the product's metadata, never guessed from a file name alone:

- **Landsat Collection 2 Level-2**: a product folder or its ``*_MTL.txt`` / ``*_MTL.json``.
  The band and QA_PIXEL files are those the MTL names (``PRODUCT_CONTENTS``), the reflectance
  scaling is ``REFLECTANCE_MULT/ADD_BAND_n`` of the MTL, red/NIR are bands 4/5 on Landsat 8–9
  (OLI) and 3/4 on Landsat 4–7 (TM/ETM+) by ``SPACECRAFT_ID`` (USGS LSDS-1619).
- **Sentinel-2 L2A**: a ``.SAFE`` folder (or its ``MTD_MSIL2A.xml``), or a folder of per-band
  COGs (B04, B08, SCL) beside that XML, a STAC Item, or with the processing baseline in the
  product name (``_N0400_``); the BOA offset follows the baseline (−1000 from 04.00).
- **MODIS MOD09GQ / MYD09GQ**: a GeoTIFF whose band descriptions name ``sur_refl_b01``,
  ``sur_refl_b02`` and the 250 m QC layer (the acquisition date from the GeoTIFF's
  ``TIFFTAG_DATETIME`` or, failing that, the product's file name: ``.AYYYYDDD.`` or ``_YYYYMMDD``).
- a **STAC Item** JSON of a Landsat C2 L2 or Sentinel-2 L2A scene whose assets are local files:
  the sensor from ``platform`` / ``constellation`` / ``landsat:*`` / ``s2:*``, the scaling from the
  MTL asset or the assets' ``raster:bands`` scale and offset.

Every problem (unknown sensor, a band or QA file missing, a Level-1 product, no processing
baseline, no overlap with the grid, too few valid pixels) is one error naming the file and
the field, raised before any pixel is computed or written.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rasterio
import xarray as xr

from ..errors import ConfigError, InputDataError, MissingFileError
from ..grid import DEFAULT_CHUNK, Grid
from . import optical as op

#: Indices :func:`scene_index` computes, with their units.
INDICES = {"ndvi": "1", "savi": "1", "fvc": "1", "lai": "m2/m2"}
#: Red / NIR band numbers of Landsat Collection 2 by ``SPACECRAFT_ID`` (USGS LSDS-1619).
LANDSAT_RED_NIR = {"LANDSAT_4": (3, 4), "LANDSAT_5": (3, 4), "LANDSAT_7": (3, 4),
                   "LANDSAT_8": (4, 5), "LANDSAT_9": (4, 5)}
SENSOR_NAMES = {"landsat_c2l2": "Landsat C2 L2", "sentinel2_l2a": "Sentinel-2 L2A", "modis_sr": "MODIS SR"}
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")
#: Per-band file names of Sentinel-2 L2A (SAFE ``T50SMG_…_B04_10m.jp2``, COGs ``B04.tif`` / ``red.tif``).
S2_BAND_PATTERNS = {"red": r"(^|[_.-])(B04|red)([_.-]|$)", "nir": r"(^|[_.-])(B08|nir)([_.-]|$)",
                    "scl": r"(^|[_.-])SCL([_.-]|$)"}


@dataclass(frozen=True)
class Scene:
    """One recognised product: where its red, NIR and mask layers are and how to scale them.

    ``scaling`` is sensor specific: Landsat ``{"reflectance": [(mult, add) red, (mult, add) NIR]}``;
    Sentinel-2 ``{"boa_offsets": (red, NIR) DN, "processing_baseline": str}`` or
    ``{"metadata_path": MTD_MSIL2A.xml}``; MODIS ``{"bands": (red, NIR, QC)}`` (×1e-4).
    """

    sensor: str
    scene_id: str
    acquired: dt.datetime
    red: Path
    nir: Path
    mask: Path
    source: Path
    metadata: Path | None = None
    scaling: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        return sorted({self.red, self.nir, self.mask} | ({self.metadata} if self.metadata else set()))

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts (provenance of a composite, flow artifacts)."""
        return {"scene_id": self.scene_id, "sensor": SENSOR_NAMES[self.sensor], "acquired": self.acquired.isoformat(),
                "source": str(self.source), "metadata": str(self.metadata) if self.metadata else None,
                "scaling": json.loads(json.dumps(self.scaling, default=str))}


# ---------------------------------------------------------------------------------------
# recognition
# ---------------------------------------------------------------------------------------

def recognise(path: str | Path) -> Scene:
    """Recognise the product at ``path`` (folder, metadata file, GeoTIFF or STAC Item) from its
    metadata; checks that every file it needs exists. Raises :class:`InputDataError` for an
    unknown sensor, :class:`MissingFileError` for a missing band / QA / metadata file."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(str(path), field="scene")
    path = path.resolve()
    if path.is_dir():
        return _recognise_folder(path)
    name = path.name.lower()
    if re.search(r"_mtl\.(txt|json)$", name):
        return _landsat_from_mtl(path, path)
    if name == "mtd_msil2a.xml":
        return _s2_from_folder(path.parent, path, source=path)
    if name.endswith(".json"):
        doc = _read_json(path)
        if "LANDSAT_METADATA_FILE" in doc:
            return _landsat_from_mtl(path, path)
        if doc.get("type") == "Feature" and "assets" in doc:
            return _from_stac(path, doc)
        raise InputDataError(f"{path}: unknown sensor: a JSON file that is neither a Landsat MTL.json nor a STAC Item")
    if name.endswith((".tif", ".tiff")):
        return _modis_from_tif(path)
    raise InputDataError(f"{path}: unknown sensor: not a Landsat C2 L2 product / MTL, a Sentinel-2 L2A product, "
                         "a MODIS SR GeoTIFF or a STAC Item")


def _recognise_folder(folder: Path) -> Scene:
    mtls = sorted(p for p in folder.iterdir() if re.search(r"_mtl\.(json|txt)$", p.name.lower()))
    if mtls:  # the JSON and the text form say the same; prefer JSON
        return _landsat_from_mtl(next((p for p in mtls if p.suffix.lower() == ".json"), mtls[0]), folder)
    xml = next(iter(sorted(folder.glob("MTD_MSIL2A.xml"))), None)
    if xml is not None or folder.suffix.upper() == ".SAFE":
        return _s2_from_folder(folder, xml, source=folder)
    items = [p for p in sorted(folder.glob("*.json")) if _is_stac_item(p)]
    if len(items) == 1:
        return _from_stac(items[0], _read_json(items[0]))
    rasters = [p for p in folder.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES]
    if any(re.search(r"_SR_B\d", p.name, re.I) for p in rasters):
        raise MissingFileError(str(folder / "*_MTL.txt"),
                               field="Landsat MTL (*_MTL.txt or *_MTL.json): needed for the bands and scaling")
    if any(re.search(S2_BAND_PATTERNS["scl"], p.stem, re.I) for p in rasters):
        return _s2_from_folder(folder, None, source=folder)
    if len(items) > 1:
        raise InputDataError(f"{folder}: {len(items)} STAC Items; give one of them")
    raise InputDataError(f"{folder}: unknown sensor: no Landsat *_MTL.txt / *_MTL.json, no Sentinel-2 "
                         "MTD_MSIL2A.xml or SCL band, no STAC Item")


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputDataError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InputDataError(f"{path}: unknown sensor: JSON top level is not an object")
    return doc


def _is_stac_item(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("type") == "Feature" and "assets" in doc


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise MissingFileError(str(path), field=what)
    return path


def _parse_time(text: str, where: str) -> dt.datetime:
    value = text.strip().replace("Z", "+00:00")
    value = re.sub(r"(\.\d{6})\d+", r"\1", value)  # USGS writes 7 fractional digits
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InputDataError(f"{where}: acquisition time {text!r} is not an ISO date") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _landsat_from_mtl(mtl: Path, source: Path) -> Scene:
    tree = op.read_mtl(mtl)
    contents, attrs = tree.get("PRODUCT_CONTENTS") or {}, tree.get("IMAGE_ATTRIBUTES") or {}
    level = str(contents.get("PROCESSING_LEVEL", ""))
    if not level.startswith("L2"):
        raise InputDataError(f"{mtl}: PRODUCT_CONTENTS.PROCESSING_LEVEL = {level!r}: not a Level-2 surface "
                             "reflectance product (L2SP / L2SR)")
    craft = str(attrs.get("SPACECRAFT_ID", ""))
    if craft not in LANDSAT_RED_NIR:
        raise InputDataError(f"{mtl}: IMAGE_ATTRIBUTES.SPACECRAFT_ID = {craft!r}: unknown sensor "
                             f"(known: {', '.join(LANDSAT_RED_NIR)})")
    red_b, nir_b = LANDSAT_RED_NIR[craft]

    def named(key: str, what: str) -> Path:
        name = contents.get(key)
        if not name:
            raise InputDataError(f"{mtl}: PRODUCT_CONTENTS.{key} is missing ({what})")
        return _existing(mtl.parent / str(name), f"Landsat {what} ({key} of {mtl.name})")

    red, nir = named(f"FILE_NAME_BAND_{red_b}", "red band"), named(f"FILE_NAME_BAND_{nir_b}", "NIR band")
    qa = named("FILE_NAME_QUALITY_L1_PIXEL", "QA_PIXEL")
    date = attrs.get("DATE_ACQUIRED")
    if not date:
        raise InputDataError(f"{mtl}: IMAGE_ATTRIBUTES.DATE_ACQUIRED is missing")
    clock = str(attrs.get("SCENE_CENTER_TIME", "00:00:00"))
    acquired = _parse_time(f"{date}T{clock}", f"{mtl}: IMAGE_ATTRIBUTES.DATE_ACQUIRED")
    scaling = [op.parse_mtl_scaling(mtl, red_b), op.parse_mtl_scaling(mtl, nir_b)]
    scene_id = str(contents.get("LANDSAT_PRODUCT_ID") or mtl.name.rsplit("_MTL", 1)[0])
    return Scene("landsat_c2l2", scene_id, acquired, red, nir, qa, source, mtl,
                 {"reflectance": scaling, "bands": [red_b, nir_b], "spacecraft": craft})


def _s2_product_info(xml: Path) -> dict[str, str]:
    text = xml.read_text(encoding="utf-8", errors="replace")
    out = {}
    for tag in ("PRODUCT_TYPE", "PRODUCT_START_TIME", "DATATAKE_SENSING_START", "PRODUCT_URI", "SPACECRAFT_NAME"):
        m = re.search(rf"<{tag}>\s*([^<]+?)\s*<", text)
        if m:
            out[tag] = m.group(1)
    return out


def _find_band(folder: Path, kind: str) -> Path:
    pattern = re.compile(S2_BAND_PATTERNS[kind], re.I)
    found = [p for p in folder.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES and pattern.search(p.stem)
             and "QI_DATA" not in p.parts]
    if not found:
        label = {"red": "B04", "nir": "B08", "scl": "SCL"}[kind]
        raise MissingFileError(str(folder / f"*{label}*"), field=f"Sentinel-2 {label} band")

    def resolution(p: Path) -> int:  # prefer 10 m bands, 20 m SCL (the native ones)
        m = re.search(r"_(\d+)m$", p.stem)
        return int(m.group(1)) if m else 0

    return sorted(found, key=lambda p: (resolution(p), str(p)))[0]


def _s2_from_folder(folder: Path, xml: Path | None, *, source: Path) -> Scene:
    red, nir, scl = _find_band(folder, "red"), _find_band(folder, "nir"), _find_band(folder, "scl")
    names = " ".join([folder.name, red.name])
    info = _s2_product_info(xml) if xml else {}
    if xml is not None:
        if "2A" not in info.get("PRODUCT_TYPE", "2A"):
            raise InputDataError(f"{xml}: PRODUCT_TYPE = {info['PRODUCT_TYPE']!r}: not a Level-2A product")
        meta = op.parse_s2_metadata(xml)
        scaling: dict[str, Any] = {"metadata_path": str(xml), "processing_baseline": meta["processing_baseline"]}
    else:
        m = re.search(r"_N(\d{2})(\d{2})_", names)
        if not m:
            raise ConfigError(f"{folder}: no MTD_MSIL2A.xml, STAC Item or _Nxxxx_ in the product name: the "
                              "processing baseline (BOA offset −1000 from 04.00) cannot be read from metadata")
        scaling = {"processing_baseline": f"{m.group(1)}.{m.group(2)}"}
    when = info.get("PRODUCT_START_TIME") or info.get("DATATAKE_SENSING_START")
    if when:
        acquired = _parse_time(when, f"{xml}: PRODUCT_START_TIME")
    else:
        m = re.search(r"(\d{8}T\d{6})", names)
        if not m:
            raise InputDataError(f"{folder}: no acquisition time (MTD_MSIL2A.xml PRODUCT_START_TIME or YYYYMMDDTHHMMSS "
                                 "in the product name)")
        acquired = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
    scene_id = info.get("PRODUCT_URI", folder.name).removesuffix(".SAFE")
    return Scene("sentinel2_l2a", scene_id, acquired, red, nir, scl, source, xml, scaling)


def _modis_from_tif(path: Path) -> Scene:
    try:
        with rasterio.open(path) as src:
            descs = [(d or "").lower() for d in src.descriptions]
            tags = src.tags()
    except rasterio.errors.RasterioIOError as exc:
        raise InputDataError(f"{path}: not a raster GDAL can open ({exc})") from None

    def band(*keys: str) -> int | None:
        return next((i for i, d in enumerate(descs, start=1) if any(k in d for k in keys)), None)

    bands = band("sur_refl_b01"), band("sur_refl_b02"), band("qc_250m", "qc")
    if bands[0] is None and bands[1] is None:
        raise InputDataError(f"{path}: unknown sensor: band descriptions {tuple(descs)} name no MODIS sur_refl_b01 / "
                             "b02 and no product metadata (MTL, MTD_MSIL2A.xml, STAC Item) is beside it")
    if None in bands:
        missing = ["sur_refl_b01 (red)", "sur_refl_b02 (NIR)", "QC_250m"][bands.index(None)]
        raise InputDataError(f"{path}: MODIS SR file without a {missing} band (descriptions {tuple(descs)})")
    acquired = None
    if tags.get("TIFFTAG_DATETIME"):
        acquired = dt.datetime.strptime(tags["TIFFTAG_DATETIME"], "%Y:%m:%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
    elif m := re.search(r"\.A(\d{4})(\d{3})\.", path.name):
        acquired = dt.datetime(int(m.group(1)), 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=int(m.group(2)) - 1)
    elif m := re.search(r"_((19|20)\d{6})(?=[_.])", path.name):
        acquired = dt.datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=dt.timezone.utc)
    if acquired is None:
        raise InputDataError(f"{path}: MODIS SR file without an acquisition date (TIFFTAG_DATETIME, or .AYYYYDDD. / "
                             "_YYYYMMDD in the name)")
    return Scene("modis_sr", path.stem, acquired, path, path, path, path, None, {"bands": list(bands)})


# -- STAC Items ---------------------------------------------------------------------------

def _asset(item: dict, path: Path, keys: tuple[str, ...], common: tuple[str, ...] = ()) -> tuple[Path, dict] | None:
    assets = item["assets"]
    lowered = {k.lower(): k for k in assets}
    key = next((lowered[k.lower()] for k in keys if k.lower() in lowered), None)
    if key is None and common:
        key = next((k for k, a in assets.items()
                    if any(b.get("common_name") in common for b in a.get("eo:bands") or [])), None)
    if key is None:
        return None
    href = str(assets[key]["href"]).removeprefix("file://")
    if "://" in href:
        raise ConfigError(f"{path}: assets.{key}.href = {href!r}: only local files can be ingested offline")
    local = Path(href) if Path(href).is_absolute() else path.parent / href
    return local.resolve(), assets[key]


def _need(found, path: Path, what: str) -> tuple[Path, dict]:
    if found is None:
        raise InputDataError(f"{path}: STAC Item has no {what} asset")
    return _existing(found[0], f"{what} (STAC asset of {path.name})"), found[1]


def _raster_scale(asset: dict) -> tuple[float, float] | None:
    bands = asset.get("raster:bands") or []
    if bands and "scale" in bands[0]:
        return float(bands[0]["scale"]), float(bands[0].get("offset", 0.0))
    return None


def _from_stac(path: Path, item: dict) -> Scene:
    props = item.get("properties") or {}
    platform = f"{props.get('platform', '')} {props.get('constellation', '')}".lower()
    when = props.get("datetime") or props.get("start_datetime")
    if not when:
        raise InputDataError(f"{path}: STAC Item without properties.datetime")
    acquired = _parse_time(str(when), f"{path}: properties.datetime")
    scene_id = str(item.get("id") or path.stem)
    if "landsat" in platform or any(k.startswith("landsat:") for k in props):
        red, red_a = _need(_asset(item, path, ("red", "sr_b4", "b4"), ("red",)), path, "red band")
        nir, nir_a = _need(_asset(item, path, ("nir08", "nir", "sr_b5", "b5"), ("nir", "nir08")), path, "NIR band")
        qa, _ = _need(_asset(item, path, ("qa_pixel", "qa")), path, "QA_PIXEL")
        mtl = _asset(item, path, ("mtl.json", "mtl.txt", "MTL_json", "MTL_txt"))
        if mtl is not None and mtl[0].is_file():
            from_mtl = _landsat_from_mtl(mtl[0], path)
            scaling = from_mtl.scaling
        elif _raster_scale(red_a) and _raster_scale(nir_a):
            scaling = {"reflectance": [_raster_scale(red_a), _raster_scale(nir_a)]}
        else:
            raise InputDataError(f"{path}: STAC Item has neither a local MTL asset nor raster:bands scale/offset "
                                 "on its red and NIR assets: the reflectance scaling cannot be read from metadata")
        return Scene("landsat_c2l2", scene_id, acquired, red, nir, qa, path, path, scaling)
    if "sentinel-2" in platform or any(k.startswith("s2:") for k in props):
        red, red_a = _need(_asset(item, path, ("red", "b04"), ("red",)), path, "B04 (red)")
        nir, nir_a = _need(_asset(item, path, ("nir", "b08"), ("nir",)), path, "B08 (NIR)")
        scl, _ = _need(_asset(item, path, ("scl",)), path, "SCL")
        baseline = props.get("s2:processing_baseline") or props.get("processing:version")
        mtd = _asset(item, path, ("product_metadata", "product-metadata", "mtd_msil2a"))
        if _raster_scale(red_a) and _raster_scale(nir_a):
            scales = [_raster_scale(red_a), _raster_scale(nir_a)]
            quant = float(op._value("sentinel2_l2a", "quantification_value"))
            if any(abs(s * quant - 1.0) > 1e-6 for s, _ in scales):
                raise InputDataError(f"{path}: raster:bands scale {scales[0][0]} is not 1/{quant:g}")
            scaling = {"boa_offsets": [o * quant for _, o in scales], "processing_baseline": baseline}
        elif mtd is not None and mtd[0].is_file() and mtd[0].name == "MTD_MSIL2A.xml":
            scaling = {"metadata_path": str(mtd[0])}
        elif baseline:
            scaling = {"processing_baseline": str(baseline)}
        else:
            raise ConfigError(f"{path}: STAC Item has no s2:processing_baseline, raster:bands offset or local "
                              "MTD_MSIL2A.xml: the BOA offset (−1000 from baseline 04.00) cannot be read from metadata")
        return Scene("sentinel2_l2a", scene_id, acquired, red, nir, scl, path, path, scaling)
    raise InputDataError(f"{path}: unknown sensor: STAC Item platform {props.get('platform')!r} / constellation "
                         f"{props.get('constellation')!r} is neither Landsat nor Sentinel-2")


# ---------------------------------------------------------------------------------------
# reading and the index
# ---------------------------------------------------------------------------------------

def read_scene(scene: Scene, grid: Grid | None = None, *, chunk: int = DEFAULT_CHUNK) -> xr.Dataset:
    """Masked red / NIR reflectance of ``scene`` (the :mod:`optical` readers), lazily on ``grid``
    (default the scene's red-band grid). Raises :class:`~ecoraster.errors.NoOverlapError` when
    the scene does not overlap ``grid`` — before anything is read."""
    s = scene.scaling
    if scene.sensor == "landsat_c2l2":
        return op.read_landsat_c2l2(scene.red, scene.nir, scene.mask, scaling=s["reflectance"], grid=grid, chunk=chunk)
    if scene.sensor == "sentinel2_l2a":
        return op.read_sentinel2_l2a(scene.red, scene.nir, scene.mask, processing_baseline=s.get("processing_baseline"),
                                     metadata_path=s.get("metadata_path"), boa_offsets=s.get("boa_offsets"),
                                     grid=grid, chunk=chunk)
    red, nir, qc = s["bands"]
    return op.read_modis_sr(scene.red, red_band=red, nir_band=nir, qc_band=qc, grid=grid, chunk=chunk)


def mask_description(scene: Scene, ds: xr.Dataset) -> str:
    """What counts as a valid pixel, for the output's tags."""
    if scene.sensor == "landsat_c2l2":
        lo, hi = op._value("landsat_c2l2", "valid_dn_range")
        return f"QA_PIXEL bits {ds.attrs['qa_mask_bits']} clear (0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, " \
               f"4 shadow, 5 snow); DN {lo}..{hi}"
    if scene.sensor == "sentinel2_l2a":
        return f"SCL in {ds.attrs['scl_keep']} (4 vegetation, 5 not vegetated, 6 water); DN > 0"
    lo, hi = op._value("modis_sr", "valid_dn_range")
    return f"QC bits 0-1 (MODLAND) = 0 (ideal quality); DN {lo}..{hi}"


@dataclass
class SceneIndex:
    """An index of one scene on a grid, ready to write; ``valid_share`` is over the whole grid."""

    scene: Scene
    index: str
    data: xr.DataArray
    grid: Grid
    valid_share: float
    tags: dict[str, str]

    def describe(self) -> dict[str, Any]:
        return {**self.scene.describe(), "index": self.index, "valid_share": self.valid_share}


def min_valid_share_default() -> float:
    """``scene.min_valid_share`` of ``configs/parameters/optical.yaml``."""
    return float(op._value("scene", "min_valid_share"))


def scene_index(
    scene: Scene | str | Path,
    index: str = "ndvi",
    *,
    grid: Grid | None = None,
    min_valid_share: float | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> SceneIndex:
    """Recognise, mask and scale a scene and compute ``index`` lazily on ``grid``.

    ``index``: ``ndvi`` (Rouse et al. 1974), ``savi`` (Huete 1988, L from ``lai_ndvi.yaml``),
    ``fvc`` (dimidiate pixel model over this scene's NDVI, :func:`optical.fvc`) or ``lai``
    (:func:`optical.lai` of that FVC). Only the valid mask is computed here: a scene whose
    share of valid pixels on ``grid`` is under ``min_valid_share`` (default
    ``scene.min_valid_share`` of ``optical.yaml``) is refused with an
    :class:`InputDataError` giving the share.
    """
    if index not in INDICES:
        raise ConfigError(f"index = {index!r}; use one of {', '.join(INDICES)}")
    scene = scene if isinstance(scene, Scene) else recognise(scene)
    threshold = min_valid_share_default() if min_valid_share is None else float(min_valid_share)
    ds = read_scene(scene, grid, chunk=chunk)
    target = grid or Grid.from_raster(scene.red)
    share = op.valid_share(ds)
    if share < threshold:
        raise InputDataError(f"{scene.source}: scene {scene.scene_id} has {share:.1%} valid pixels on the output grid, "
                             f"under min_valid_share {threshold:.1%} (clouds, fill or outside the grid); not used")
    ndvi = op.ndvi(ds)
    extra: dict[str, str] = {}
    if index == "ndvi":
        arr = ndvi
    elif index == "savi":
        arr = op.savi(ds)
    else:
        arr, ends = op.fvc(ndvi)
        extra["fvc_endmembers"] = json.dumps({str(k): [round(float(x), 6) for x in v] for k, v in ends.items()})
        if index == "lai":
            arr = op.lai(arr)
    tags = {"index": index, "sensor": SENSOR_NAMES[scene.sensor], "scene_id": scene.scene_id,
            "acquired": scene.acquired.isoformat(), "valid_share": f"{share:.6f}",
            "min_valid_share": f"{threshold:g}", "mask": mask_description(scene, ds),
            "scaling": json.dumps(scene.scaling, default=str), "source": str(scene.source),
            "TIFFTAG_DATETIME": scene.acquired.strftime("%Y:%m:%d %H:%M:%S"), **extra}
    return SceneIndex(scene, index, arr, target, share, tags)


def write_scene_index(result: SceneIndex, out: str | Path) -> Path:
    """Write the index as a COG (float32, NaN nodata) with the scene's facts in its tags."""
    from ..io.raster import RasterOutput, write_rasters

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    desc = f"{result.index.upper()} of {result.scene.scene_id} ({result.tags['sensor']}, {result.scene.acquired.date()})"
    write_rasters([RasterOutput(out, result.data.data, float("nan"), INDICES[result.index], desc,
                                tags=result.tags)], result.grid)
    return out


def read_index_tags(path: str | Path) -> dict[str, str]:
    """The dataset tags of an index written by :func:`write_scene_index`."""
    with rasterio.open(path) as src:
        return dict(src.tags())
