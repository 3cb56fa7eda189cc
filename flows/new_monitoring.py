"""``on_new_monitoring``: grid monitoring (网格化监测) — a station table as it arrives (CNEMC
national stations, micro-stations, city series; hourly or daily) → QC → period means → IDW or
ordinary kriging (leave-one-out RMSE) → the run's concentration datasets replaced through the
workspace's overlay catalogue → air purification recomputed, nothing else; a table artifact lists
the stations taken per dataset, the RMSE and what was recomputed. The logic is
:func:`ecoraster.pipeline.observations.new_monitoring`; this module only wires Prefect.

Run it::

    eco flow new-monitoring configs/wuhan_2013.yaml -w outputs/wuhan_2013 --stations cnemc_2013.csv
    python -m flows.new_monitoring configs/wuhan_2013.yaml -w outputs/wuhan_2013 --stations cnemc_2013.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flows  # noqa: F401,E402  (quiet, offline settings before Prefect)
from flows.tasks import PrefectExecutor, dask_settings, report_artifact  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from ecoraster.pipeline import observations  # noqa: E402
from ecoraster.pipeline.runner import resolve_run  # noqa: E402


@task(name="report-monitoring", cache_policy=NO_CACHE)
def report_task(summary: dict) -> None:
    """A table artifact: per concentration dataset the stations taken and the LOOCV RMSE."""
    report_artifact("new-monitoring", summary, rows=[
        {"dataset": d["dataset"], "pollutant": d["pollutant"], "period": d["period"], "method": d["method"],
         "stations": d["n_stations"], "loocv_rmse": round(d["loocv_rmse"], 3), "units": d["units"]}
        for d in (summary.get("stations") or {}).get("datasets", [])])


@flow(name="on_new_monitoring", task_runner=ThreadPoolTaskRunner(max_workers=4))
def on_new_monitoring(config: str, stations: str, workspace: str | None = None, datasets: list[str] | None = None,
                      period: str | None = None, method: str | None = None, min_fraction: float | None = None,
                      columns: dict[str, str] | None = None, dask_address: str | None = None) -> dict:
    """Replace a workspace's concentration datasets by grids from a station table and recompute
    what reads them.

    Parameters
    ----------
    config, workspace : the run config and the workspace of an earlier run (default as for
        ``annual_gep``: ``$ECORASTER_OUTPUT_DIR/<region>_<year>``).
    stations : the station table (CNEMC ``.txt``, CSV or XLSX).
    datasets : only these concentration datasets (default: every one that declares
        ``derive: {stations: …}`` and every ``conc_*`` input of air purification).
    period, method, min_fraction : override the datasets' averaging period (in the run's
        year), interpolation (``idw`` / ``kriging``) and share of valid days.
    columns : ``{column: role}`` for columns the reader does not know (``ignore`` skips one).
    """
    logger = get_run_logger()
    config, workspace = resolve_run(None, None, config, workspace)
    summary = observations.new_monitoring(config, workspace, stations, datasets=datasets, period=period,
                                          method=method, min_fraction=min_fraction, columns=columns,
                                          executor=PrefectExecutor(), dask_config=dask_settings(config, dask_address))
    for d in summary["stations"]["datasets"]:
        logger.info("%s: %s %s from %d stations (%s, LOOCV RMSE %.2f %s)", d["dataset"], d["pollutant"], d["period"],
                    d["n_stations"], d["method"], d["loocv_rmse"], d["units"])
    report_task(summary)
    return summary


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Replace concentration datasets from a station table.")
    parser.add_argument("config")
    parser.add_argument("-w", "--workspace", required=True)
    parser.add_argument("--stations", required=True)
    parser.add_argument("--dataset", action="append", default=[])
    parser.add_argument("--period")
    parser.add_argument("--method")
    parser.add_argument("--dask-address")
    a = parser.parse_args()
    out = on_new_monitoring(a.config, workspace=a.workspace, stations=a.stations, datasets=a.dataset or None, period=a.period,
                            method=a.method, dask_address=a.dask_address)
    print(out.get("manifest"))
