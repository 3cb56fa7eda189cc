"""A regular (non-editable) install runs a priced service from another folder.

The wheel is built from a copy of the working tree (so the source folder stays clean) and
installed with ``--no-deps`` into a fresh venv whose only view of the dependencies is a
``.pth`` line pointing at this interpreter's site-packages (no editable finder of
ecoraster there: ``.pth`` files of that folder are not processed). Every reference table the
run reads — standard profile, products, the profile's default price table, CPI, the runoff
coefficients — must then come from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ..conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _copy_tree(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if not os.path.lexists(src) or rel.startswith(("notebooks/", "bench/", "tests/", "data/")):
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), target)
        elif src.is_file():
            shutil.copy2(src, target)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ folder of a venv with ecoraster installed from a wheel."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    _copy_tree(src)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(root / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((root / "dist").glob("ecoraster-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_deps.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-deps", "--no-compile", str(wheel)], check=True, capture_output=True)
    return venv / "bin"


def test_wheel_ships_the_reference_tables_and_runs_a_priced_service(installed, tmp_path, raster_writer):
    work = tmp_path / "elsewhere"
    work.mkdir()
    # 4 × 4 forest (class 11), P = 800 mm, ET = 500 mm; runoff coefficients from the shipped table
    raster_writer(work / "eco.tif", np.full((4, 4), 11, np.uint8), nodata=255)
    raster_writer(work / "p.tif", np.full((4, 4), 800.0, np.float32), nodata=-1.0)
    raster_writer(work / "et.tif", np.full((4, 4), 500.0, np.float32), nodata=-1.0)
    (work / "data_catalog.yaml").write_text(textwrap.dedent("""
        datasets:
          eco: {kind: raster, uri: eco.tif, categorical: true}
          p: {kind: raster, uri: p.tif}
          et: {kind: raster, uri: et.tif}
    """), encoding="utf-8")
    (work / "run.yaml").write_text(textwrap.dedent("""
        region: test
        year: 2020
        grid: {like: eco}
        profile: mee2020
        services:
          water_conservation:
            inputs: {ecosystem: eco, precipitation: p, aet: et}
    """), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ECORASTER_CONFIG_DIR")}
    where = subprocess.run([installed / "python", "-c", "import ecoraster; print(ecoraster.__file__)"],
                           cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout
    assert str(installed.parent) in where, where
    out = subprocess.run([installed / "eco", "run", "run.yaml", "-w", "ws", "--json", "--quiet"], cwd=work,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    manifest = json.loads((work / "ws" / "run.json").read_text(encoding="utf-8"))
    valuation = manifest["valuation"]
    assert str(installed.parent) in valuation["price_table_path"]  # the shipped table, inside the venv
    info = valuation["valued"]["water_conservation.water_conservation_m3"]
    # value = quantity × rebased price (CNY/m3), as recorded; both positive
    assert info["value_total"] == pytest.approx(info["physical_total"] * info["factor_cny_per_unit"], rel=1e-5)
    assert info["value_total"] > 0
