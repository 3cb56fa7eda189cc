"""Windbreak and sand fixation (防风固沙) by RWEQ: potential minus actual wind erosion (t/yr).

An optional service: the Wuhan, 宁河 and 崇明 configs do not list it (wind erosion is negligible
there, gep-methods.md §3.3); a run config that wants it lists ``sand_fixation`` under
``services``. Per pixel (:mod:`ecoraster.kernels.wind`)::

    X = WF · EF · SCF · K';  SL_p = RWEQ(X);  SL_a = RWEQ(X · exp(−0.0438·SC))
    Q = (SL_p − SL_a) [kg/m²] × pixel area [m²] / 1000  → t per pixel

WF (weather factor, kg/m, annual) is an input raster; EF and SCF come from the soil's sand, silt,
clay, organic matter and CaCO₃ (parameters, or a soil raster later); K' from ridge roughness
(parameters); SC vegetation cover [%] from NDVI by the dimidiate pixel model.
Value = Q / (ρ·h) × sand-control cost (composite price ``sand_fixation_composite``, 甘孜 2017).
"""

from __future__ import annotations

import numpy as np

from ..context import ServiceContext
from ..engine import map_blocks
from ..kernels import wind
from ..spec import InputSpec, Issue, MethodSpec, OutputSpec, ParameterSpec, ServiceResult, ServiceSpec

NODATA = -9999.0
PRODUCT = "sand_fixation"


def _p(pid, about, units, default, source, confidence, **limits):
    """A number parameter (``limits``: minimum, maximum, exclusive_minimum)."""
    return ParameterSpec(id=pid, about=about, units=units, default=default, source=source, confidence=confidence,
                         type="number", **limits)


PCT = {"minimum": 0.0, "maximum": 100.0}
POSITIVE = {"minimum": 0.0, "exclusive_minimum": True}
PARAMS = ("sand_pct", "silt_pct", "clay_pct", "organic_matter_pct", "caco3_pct", "ridge_height_cm",
          "ridge_spacing_cm", "random_roughness_cm", "downwind_m", "ndvi_soil", "ndvi_veg")


SPEC = ServiceSpec(
    id="sand_fixation",
    name="Windbreak and sand fixation",
    name_zh="防风固沙",
    about="Wind erosion avoided by vegetation: RWEQ potential minus actual soil loss (optional service).",
    category="调节服务",
    methods=(
        MethodSpec(id="rweq", about="RWEQ: potential (bare) minus actual (vegetated) wind erosion",
                   required_inputs=("weather_factor", "ndvi"), parameters=PARAMS, required_parameters=PARAMS,
                   outputs=("sand_fixation_t", "wind_loss_potential", "wind_loss_actual")),
    ),
    reference="Fryrear et al. 1998 (RWEQ); gep-methods.md §3.3; 甘孜 2017 (value)",
    inputs=(
        InputSpec(id="weather_factor", kind="raster", units="kg/m", resampling="bilinear",
                  about="RWEQ weather factor WF = Wf·ρ/g·SW·SD, annual"),
        InputSpec(id="ndvi", kind="raster", units="1", resampling="bilinear",
                  about="NDVI → vegetation cover SC (dimidiate pixel model)"),
    ),
    parameters=(
        _p("sand_pct", "topsoil sand", "%", 60.0, "regional soil survey; default a sandy loam", "✱", **PCT),
        _p("silt_pct", "topsoil silt", "%", 25.0, "regional soil survey", "✱", **PCT),
        _p("clay_pct", "topsoil clay (> 0: EF divides sand by clay)", "%", 15.0, "regional soil survey", "✱",
           minimum=0.0, maximum=100.0, exclusive_minimum=True),
        _p("organic_matter_pct", "topsoil organic matter", "%", 1.0, "regional soil survey", "✱", **PCT),
        _p("caco3_pct", "topsoil CaCO₃", "%", 1.0, "regional soil survey", "✱", **PCT),
        _p("ridge_height_cm", "ridge height ΔH of K'", "cm", 0.0, "Fryrear et al. 1998; 0 = no ridges", "✱",
           minimum=0.0),
        _p("ridge_spacing_cm", "ridge spacing L of K'", "cm", 100.0, "Fryrear et al. 1998", "✱", **POSITIVE),
        _p("random_roughness_cm", "random roughness Crr of K'", "cm", 1.0, "Fryrear et al. 1998", "✱",
           minimum=0.0),
        _p("downwind_m", "downwind distance z", "m", 50.0, "common RWEQ choice in Chinese GEP studies", "◐", **POSITIVE),
        _p("ndvi_soil", "NDVI of bare soil", "1", 0.05, "dimidiate pixel model", "✱", minimum=-1.0, maximum=1.0),
        _p("ndvi_veg", "NDVI of full cover", "1", 0.86, "dimidiate pixel model", "✱", minimum=-1.0, maximum=1.0),
    ),
    outputs=(
        OutputSpec(id="sand_fixation_t", filename="sand_fixation_t.tif", units="t", per="pixel", nodata=NODATA,
                   product=PRODUCT, about="wind erosion avoided per pixel per year, RWEQ potential − actual"),
        OutputSpec(id="wind_loss_potential", filename="wind_loss_potential.tif", units="kg/m2", per="state",
                   kind="intermediate", nodata=NODATA, about="RWEQ potential soil loss (bare soil)"),
        OutputSpec(id="wind_loss_actual", filename="wind_loss_actual.tif", units="kg/m2", per="state",
                   kind="intermediate", nodata=NODATA, about="RWEQ actual soil loss (with vegetation)"),
    ),
)


def validate(ctx: ServiceContext) -> list[Issue]:
    """The spec's checks (inputs, percentages 0..100, clay > 0), then NDVI of full cover above bare soil."""
    issues = ctx.validate_inputs()
    ns, nv = ctx.param("ndvi_soil"), ctx.param("ndvi_veg")
    if isinstance(ns, (int, float)) and isinstance(nv, (int, float)) and not nv > ns:
        issues.append(Issue(("services", SPEC.id, "params", "ndvi_veg"),
                            f"= {nv!r} must be above ndvi_soil = {ns!r} (dimidiate pixel model)"))
    return issues


def compute(ctx: ServiceContext) -> ServiceResult:
    p = ctx.param
    ef = float(wind.erodible_fraction(p("sand_pct"), p("silt_pct"), p("clay_pct"), p("organic_matter_pct"),
                                      p("caco3_pct")))
    scf = float(wind.crust_factor(p("clay_pct"), p("organic_matter_pct")))
    kp = float(wind.roughness_factor(p("ridge_height_cm"), p("ridge_spacing_cm"), p("random_roughness_cm")))
    z, ns, nv = float(p("downwind_m")), float(p("ndvi_soil")), float(p("ndvi_veg"))
    wf = ctx.raster("weather_factor", dtype="float32", nodata=np.nan).data
    ndvi = ctx.raster("ndvi", dtype="float32", nodata=np.nan).data

    def block(w, n, *, row_area_m2):
        cover = 100.0 * np.clip((n.astype(np.float64) - ns) / (nv - ns), 0.0, 1.0)
        w64 = w.astype(np.float64)
        pot, act = np.empty_like(w64), np.empty_like(w64)
        wind.sand_fixation(w64, np.full_like(w64, ef), np.full_like(w64, scf), np.full_like(w64, kp), cover, z,
                           pot, act)
        out = np.full((3, *w.shape), NODATA, dtype=np.float32)
        ok = ~np.isnan(pot)
        out[0][ok] = ((pot - act) * row_area_m2[:, None] / 1000.0)[ok]
        out[1][ok], out[2][ok] = pot[ok], act[ok]
        return out

    fixed, potential, actual = map_blocks(block, wf, ndvi, grid=ctx.grid, n_out=3)
    records = ctx.write({"sand_fixation_t": fixed, "wind_loss_potential": potential, "wind_loss_actual": actual})
    result = ServiceResult(service=SPEC.id, outputs=records,
                           metadata={"ef": ef, "scf": scf, "kprime": kp, "downwind_m": z})
    result.totals["sand_fixation_t_total"] = (records["sand_fixation_t"].total, "t")
    result.notes.append(f"RWEQ factors: EF {ef:.4f}, SCF {scf:.4f}, K' {kp:.4f} (from the soil and roughness "
                        f"parameters), z = {z:g} m")
    return ctx.checked(result)
