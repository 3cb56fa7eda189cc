"""The Prefect flows for raw scenes and station tables: same library call as --no-prefect, plus a
table artifact listing what was taken and what was recomputed."""

from __future__ import annotations

import pytest
import yaml

from ..ingest.conftest import REAL
from ..pipeline.test_observations import _config, _scene

pytestmark = pytest.mark.slow


def _artifact(key):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
        from prefect.client.schemas.sorting import ArtifactSort

        # Other tests of the session write artifacts under the same key: take the newest one.
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                      sort=ArtifactSort.CREATED_DESC, limit=1)
    return found[0] if found else None


def test_flows_take_a_scene_and_a_station_table(tmp_zh):
    from flows.annual import annual_gep
    from flows.new_imagery import on_new_imagery
    from flows.new_monitoring import on_new_monitoring

    cfg = _config(tmp_zh)
    ws = tmp_zh / "ws"
    annual_gep(config=str(cfg), workspace=str(ws))
    out = on_new_imagery(str(cfg), str(ws), folder=str(_scene(tmp_zh / "incoming").parent),
                         dataset="scene_ndvi_monthly")
    assert [s["period"] for s in out["scenes"]] == ["2015-07"] and "service.carbon_sequestration" in out["computed"]
    art = _artifact("new-imagery")
    assert art is not None and "carbon_sequestration" in art.description and "0.666" in str(art.data)
    table = REAL / "cnemc_pm25_city_daily_2014_2016" / "pm25_daily_wuhan_tianjin_shanghai_2014_2016.csv"
    if not table.is_file():
        pytest.skip("../shared/data/real is absent")
    res = on_new_monitoring(str(cfg), workspace=str(ws), stations=str(table), datasets=["wuhan_pm25"])
    assert res["stations"]["datasets"][0]["n_stations"] == 3 and "service.air_purification" in res["computed"]
    assert "service.carbon_sequestration" not in res["computed"]
    art = _artifact("new-monitoring")
    assert art is not None and "wuhan_pm25" in str(art.data)
    prov = yaml.safe_load((ws / "catalog.overlay.yaml").read_text(encoding="utf-8"))["provenance"]
    assert set(prov) == {"scene_ndvi_monthly", "wuhan_pm25"}
