"""The walk-through notebook runs top to bottom (its code cells executed as plain Python, no
Jupyter needed; matplotlib draws off screen) on the full GEP demo at a coarser grid: a map
of every service, GEP by product and by district, the workbook and the manifest."""

import json
import os

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_walkthrough_notebook_runs(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="matplotlib is a dev dependency (the notebook's maps and charts)")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = json.loads((REPO / "notebooks" / "walkthrough.ipynb").read_text(encoding="utf-8"))
    source = "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    source = source.replace('REPO / "outputs" / "notebook" / "wuhan_2013"', f'__import__("pathlib").Path({str(tmp_path)!r})')
    source = source.replace("COARSEN_TO_M = None", "COARSEN_TO_M = 600")  # 150 × 150 px: seconds, not a minute
    assert "COARSEN_TO_M = 600" in source and str(tmp_path) in source
    monkeypatch.chdir(REPO / "notebooks")
    ns: dict = {}
    exec(compile(source, "walkthrough.ipynb", "exec"), ns)
    import matplotlib.pyplot as plt

    assert os.path.exists(tmp_path / "run.json")
    # one map per value layer, each in its legend's classes, none empty
    assert len(ns["drawn"]) == len(ns["value_ids"]) >= 8
    assert all(lg["classes"] for lg in ns["drawn"])
    # the product chart adds up to the region's GEP in the catalogue (亿元 = 1e8 CNY)
    region = ns["region"]
    assert ns["by_product"].sum() * 1e8 == pytest.approx(region["value_cny"].sum(), rel=1e-12)
    gep = json.loads((tmp_path / "products" / "products.json").read_text(encoding="utf-8"))["gep_region"]["gep"]
    assert ns["by_product"].sum() * 1e8 == pytest.approx(gep, rel=1e-9)
    # districts: the stacked first-level classes add up to each district's GEP
    d = ns["districts"]
    assert (d[ns["levels"]].sum(axis=1) - d["gep_cny"]).abs().max() <= 1e-6 * d["gep_cny"].abs().max()
    assert ns["manifest"]["software_provenance"]["package"] == "ecoraster"
    plt.close("all")
