"""Property test: whatever a config or catalogue file holds, loading it either works or raises an
ecoraster error with a message (ConfigError / CatalogError …) — never a traceback of another type."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecoraster.config import RunConfig
from ecoraster.datasets import Catalog
from ecoraster.errors import EcorasterError

KEYS = ["region", "year", "catalog", "extra_catalogs", "grid", "services", "zones", "chunk", "profile",
        "price_year", "like", "crs", "resolution", "bounds", "inputs", "params", "dataset", "id_field",
        "datum", "datasets", "defaults", "kind", "uri", "units", "nodata", "band", "reclass", "checksum",
        "valid_years", "version", "p", "water_conservation"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["EPSG:4527", "raster", "mm/yr", "K", "x.tif", ".nan"]))
trees = st.recursive(scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.sampled_from(KEYS), kids, max_size=6)), max_leaves=25)
documents = st.one_of(trees.map(lambda t: yaml.safe_dump(t, allow_unicode=True)), st.text(max_size=200),
                      st.binary(max_size=100))


def _load(loader, content) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.yaml"
        (path.write_bytes if isinstance(content, bytes) else lambda c: path.write_text(c, encoding="utf-8"))(content)
        (Path(tmp) / "data_catalog.yaml").write_text("datasets: {}\n", encoding="utf-8")
        try:
            loader(path)
        except EcorasterError as exc:
            assert str(exc).strip() and "\n" not in str(exc).strip(), repr(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_run_config_loader_never_crashes(doc):
    _load(RunConfig.load, doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_catalogue_loader_never_crashes(doc):
    _load(Catalog.load, doc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), trees, max_size=8))
def test_catalogue_entries_never_crash(entry):
    # e.g. {"version": "abc"} at the top, or an entry's band "x", nodata [1], crs 5 …
    _load(Catalog.load, yaml.safe_dump({"datasets": {"d": entry}}, allow_unicode=True))


def test_catalogue_version_not_an_integer():
    _load(Catalog.load, "version: abc\ndatasets: {}\n")
