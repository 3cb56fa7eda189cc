"""The same flow on an existing distributed scheduler (a LocalCluster with 2 worker processes,
its address given in the config) gives the same results as a single-process run."""

import json

import numpy as np
import rasterio

from flows.annual import annual_gep

from .conftest import small_config


def _outputs(ws):
    res = json.loads((ws / "run.json").read_text(encoding="utf-8"))["results"]["carbon_storage"]
    arrays = {}
    for oid, rec in res["outputs"].items():
        with rasterio.open(ws / rec["path"]) as src:  # paths in run.json are workspace-relative
            arrays[oid] = src.read(1)
    return {k: v["total"] for k, v in res["outputs"].items()}, arrays


def test_cluster_address_from_config_equals_single_process(tmp_zh):
    from distributed import LocalCluster

    single_dir, cluster_dir = tmp_zh / "single", tmp_zh / "cluster"
    single_dir.mkdir()
    cluster_dir.mkdir()
    single = small_config(single_dir, dask={"scheduler": "synchronous"})
    annual_gep(config=str(single), workspace=str(single_dir / "ws"))

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        cfg = small_config(cluster_dir, dask={"address": cluster.scheduler_address})
        out = annual_gep(config=str(cfg), workspace=str(cluster_dir / "ws"))
        assert out["computed"]  # a different config folder → its own workspace, computed on the cluster
        from distributed import Client

        with Client(cluster.scheduler_address) as client:  # both workers really did pixel work
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        assert len(executed) == 2 and all(n > 0 for n in executed.values()), executed
    totals_1, arrays_1 = _outputs(single_dir / "ws")
    totals_2, arrays_2 = _outputs(cluster_dir / "ws")
    assert totals_1 == totals_2
    for oid in arrays_1:
        assert np.array_equal(arrays_1[oid], arrays_2[oid]), oid
