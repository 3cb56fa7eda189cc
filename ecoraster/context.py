"""What a service sees while it validates and computes: its resolved inputs on the run's
grid, its method and parameters, a writer for its declared outputs, and the checks of its
spec (:meth:`ServiceContext.validate_inputs` before, :meth:`ServiceContext.checked` after)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import dask.array as da
import pandas as pd
import xarray as xr

from .datasets import Catalog, DatasetEntry
from .errors import EcorasterError, ServiceError
from .grid import Grid, SourceInfo, align_to, inspect_source
from .io.raster import RasterOutput, write_rasters
from .spec import (Issue, MethodSpec, OutputRecord, ServiceResult, ServiceSpec, check_request, closest,
                   expected_outputs, output_problems)
from .tables import read_table

log = logging.getLogger(__name__)


def _file_identity(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of a local file, (0, 0) otherwise: a cheap key that changes with the file."""
    try:
        st = Path(path).stat()
        return st.st_size, st.st_mtime_ns
    except OSError:
        return 0, 0


@lru_cache(maxsize=64)
def _check_reclass_codes(uri: str, identity: tuple[int, int], table: str, band: int, nodata: float,
                         chunk: int) -> None:
    """Scan a land-cover raster once per run for codes its reclass table lacks (raises
    MissingLookupValuesError). Several services often share one land cover: the scan is cached
    on the file's identity, so they don't each read it again."""
    from .ingest.landcover import check_codes

    check_codes(uri, table, band=band, src_nodata=nodata, chunk=chunk)


@dataclass
class ServiceContext:
    """Inputs, parameters and output writer of one service in one run.

    ``inputs`` maps the service's input ids to catalogue ids (or numbers for scalars);
    ``params`` overrides parameter defaults of the spec.
    """

    spec: ServiceSpec
    grid: Grid
    catalog: Catalog
    out_dir: Path
    inputs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    method: str | None = None
    chunk: int = 2048
    progress: Callable[[int, int], None] | None = None
    year: int | None = None
    profile: str | None = None
    #: Ids of the outputs written so far through :meth:`write` (for :meth:`checked`).
    written: list[str] = field(default_factory=list)

    # -- method and parameters ---------------------------------------------------------
    @property
    def method_spec(self) -> MethodSpec:
        """The run's method: the config's ``method``, else the profile's default method
        (``MethodSpec.profiles``), else the first declared. KeyError if unknown (validation
        reports it first)."""
        return self.spec.method(self.method, self.profile)

    @property
    def method_id(self) -> str:
        return self.method_spec.id

    # -- inputs -------------------------------------------------------------------------
    def has(self, input_id: str) -> bool:
        return self.inputs.get(input_id) not in (None, "")

    def entry(self, input_id: str) -> DatasetEntry:
        """Catalogue entry of an input (raster, vector or table)."""
        if not self.has(input_id):
            raise ServiceError(f"{self.spec.id}: input {input_id!r} is not given")
        return self.catalog.get(str(self.inputs[input_id]), field=f"services.{self.spec.id}.inputs.{input_id}")

    def source_info(self, input_id: str) -> SourceInfo:
        e = self.entry(input_id)
        return inspect_source(e.uri, band=e.band, crs=e.crs, nodata=e.nodata,
                              field=f"services.{self.spec.id}.inputs.{input_id}")

    def raster(self, input_id: str, *, dtype: Any = None, nodata: float | None = None) -> xr.DataArray:
        """An input raster aligned lazily to the run grid (resampling: the spec's, else the
        catalogue entry's)."""
        e = self.entry(input_id)
        spec = self.spec.input(input_id)
        resampling = spec.resampling or e.effective_resampling
        if e.reclass:
            from .ingest.landcover import reclassify

            classes = reclassify(e.uri, e.reclass, self.grid, band=e.band, src_nodata=e.nodata, src_crs=e.crs,
                                 resampling=resampling if resampling in ("mode", "nearest") else "mode",
                                 chunk=self.chunk, check=False)
            return classes if dtype is None else classes.astype(dtype).assign_attrs(classes.attrs)
        from .checks import guard_raster  # units converted, physical range enforced (configs/parameters/input_ranges.yaml)

        return guard_raster(self, input_id, align_to(self.source_info(input_id), self.grid, resampling, dtype=dtype,
                                                     nodata=nodata, chunk=self.chunk, name=input_id))

    def class_array(self, input_id: str, chunk: int | None = None) -> tuple[da.Array, int]:
        """A class raster (after the catalogue's ``reclass`` table, if any) on the run grid as
        int64 with ``chunk`` (default: the run's), and its nodata code."""
        ctx = self if chunk is None or chunk == self.chunk else replace(self, chunk=chunk)
        arr = ctx.raster(input_id, dtype="int64")
        return arr.data, int(arr.attrs["nodata"])

    def table(self, input_id: str) -> pd.DataFrame:
        e = self.entry(input_id)
        return read_table(e.uri, field=f"services.{self.spec.id}.inputs.{input_id}")

    def scalar(self, input_id: str) -> float:
        value = self.inputs.get(input_id)
        if isinstance(value, (int, float)):
            return float(value)
        raise ServiceError(f"{self.spec.id}: input {input_id!r} must be a number, got {value!r}")

    def param(self, param_id: str) -> Any:
        """Parameter value: the run's override, else the default of the run's standard
        profile (from the parameter's table, or the spec's ``by_profile``), else the default."""
        if param_id in self.params:
            return self.params[param_id]
        from .services._constants import default_value

        return default_value(self.spec.parameter(param_id), self.profile)

    def parameters_used(self) -> dict[str, dict[str, Any]]:
        """Every parameter's value for this run, with unit, source, confidence and where the
        value came from (run params / profile / default): for the result's metadata."""
        from .services._constants import described

        out = {}
        for p in self.spec.parameters:
            d = described(p)
            origin = ("run params" if p.id in self.params else
                      f"profile {self.profile}" if self.profile in d.by_profile else "default")
            out[p.id] = {"value": self.param(p.id), "unit": d.units, "source": d.source,
                         "confidence": d.confidence, "from": origin}
        return out

    # -- validation helpers ------------------------------------------------------------
    def validate_inputs(self) -> list[Issue]:
        """Every check the spec implies, before anything is computed; never raises.

        The request (:func:`~ecoraster.spec.check_request`): a known method, no unknown or
        misspelt parameter, parameter types / ranges / choices, the method's required inputs
        and parameters. Then every given input: a declared input, a known catalogue id of
        the right kind, the file exists, rasters have CRS and nodata and overlap the grid.
        An unknown method stops here (the rest depends on it)."""
        issues = check_request(self.spec, self.method, self.profile, self.has, self.params, self.param)
        try:
            method = self.method_spec
        except KeyError:
            return issues
        known = sorted(s.id for s in self.spec.inputs)
        for extra in sorted(set(self.inputs) - set(known)):
            issues.append(Issue(("services", self.spec.id, "inputs", extra),
                                f"not an input of {self.spec.id}{closest(extra, known)} "
                                f"(inputs: {', '.join(known)})"))
        for ispec in self.spec.inputs:
            keys = ("services", self.spec.id, "inputs", ispec.id)
            if not self.has(ispec.id):
                if ispec.required and ispec.id not in method.required_inputs:
                    issues.append(Issue(keys, f"required input missing ({ispec.about})"))
                continue
            if ispec.kind == "scalar":
                if not isinstance(self.inputs[ispec.id], (int, float)):
                    issues.append(Issue(keys, f"must be a number, got {self.inputs[ispec.id]!r}"))
                continue
            try:
                e = self.entry(ispec.id)
                if e.kind != ispec.kind:
                    issues.append(Issue(keys, f"{e.id!r} is a {e.kind}, expected a {ispec.kind}"))
                    continue
                e.check_exists()
                if ispec.kind == "raster":
                    align_to(self.source_info(ispec.id), self.grid, ispec.resampling or e.effective_resampling,
                             chunk=self.chunk)
                    if e.reclass:
                        _check_reclass_codes(e.uri, _file_identity(e.uri), e.reclass, e.band,
                                             self.source_info(ispec.id).nodata, self.chunk)
            except EcorasterError as exc:
                issues.append(Issue(keys, str(exc)))
        return issues

    # -- outputs ------------------------------------------------------------------------
    def write(self, arrays: dict[str, da.Array], tags: dict[str, str] | None = None) -> dict[str, OutputRecord]:
        """Write declared outputs (by output id) as COGs into ``out_dir`` in one streaming
        pass; return their records with float64 totals."""
        outs = []
        for out_id, arr in arrays.items():
            ospec = self.spec.output(out_id)
            extra = {"service": self.spec.id, "kind": ospec.kind, "per": ospec.per,
                     "nodata": str(ospec.nodata), **(tags or {})}
            if self.year is not None:
                extra["year"] = str(self.year)
            outs.append(RasterOutput(
                path=self.out_dir / ospec.filename, data=arr, nodata=ospec.nodata, units=ospec.units,
                description=f"{ospec.about} [{ospec.units}]", dtype=ospec.dtype, tags=extra,
                per_class=ospec.values == "per_class",
            ))
        stats = write_rasters(outs, self.grid, progress=self.progress)
        self.written.extend(arrays)
        records = {}
        for out_id, out in zip(arrays, outs):
            ospec = self.spec.output(out_id)
            st = stats[str(out.path)]
            records[out_id] = OutputRecord(
                id=out_id, path=str(out.path), units=ospec.units, kind=ospec.kind, per=ospec.per,
                nodata=ospec.nodata, total=st.total, valid_pixels=st.valid_pixels,
                minimum=st.minimum, maximum=st.maximum, product=ospec.product, values=ospec.values,
            )
        return records

    def checked(self, result: ServiceResult) -> ServiceResult:
        """``result`` after InVEST's ``check_outputs``: every output the method must write
        for this request (``created_if`` applied) is in it, and nothing undeclared is.
        Raises :class:`ServiceError` listing every mismatch (a bug of the service)."""
        method = self.method_spec
        expected = expected_outputs(self.spec, method, self.has, self.param)
        problems = output_problems(self.spec, method, expected, list(result.outputs))
        if problems:
            raise ServiceError(f"{self.spec.id} (method {method.id}): " + "; ".join(problems))
        return result
