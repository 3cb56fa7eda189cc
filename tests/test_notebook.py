"""The walk-through notebook's code runs top to bottom (executed as plain Python, no Jupyter needed)."""

import json
import os

from .conftest import REPO


def test_walkthrough_notebook_runs(tmp_path, monkeypatch):
    nb = json.loads((REPO / "notebooks" / "walkthrough.ipynb").read_text(encoding="utf-8"))
    source = "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    source = source.replace('REPO / "outputs" / "notebook"', f'__import__("pathlib").Path({str(tmp_path)!r})')
    monkeypatch.chdir(REPO / "notebooks")
    namespace: dict = {}
    exec(compile(source, "walkthrough.ipynb", "exec"), namespace)
    assert namespace["result"].services["carbon_storage"].totals["c_change_total"][0] < 0
    assert os.path.exists(namespace["result"].manifest_path)
