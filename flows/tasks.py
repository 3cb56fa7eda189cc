"""Prefect tasks: each calls one step of :mod:`flows.steps` with paths, ids and small
parameters, and returns a small dict of paths and keys. Shared by both flows.

Every task that reads or writes files retries (``IO_RETRIES``: 3 times, 2 / 10 / 30 s apart
with jitter) when it failed with an ``OSError`` (a file or mount that is not there yet, a
network filesystem hiccup); a bad config or input (``ValueError``) fails at once. Prefect's
own caching is off (``NO_CACHE``): steps are skipped by :mod:`ecoraster.cache`, whose records
live in the workspace and work without Prefect.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from ecoraster.config import DaskConfig, RunConfig
from ecoraster.run import dask_scheduler

from . import steps
from .artifacts import publish_run_summary


def retry_on_os_error(task, task_run, state) -> bool:
    """Retry condition of ``IO_RETRIES``: only I/O errors may go away by themselves."""
    return isinstance(getattr(state, "data", None), OSError)


IO_RETRIES = dict(retries=3, retry_delay_seconds=[2, 10, 30], retry_jitter_factor=0.2,
                  retry_condition_fn=retry_on_os_error)


# -- dask -----------------------------------------------------------------------------------------

def _on_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
        return True
    except (ImportError, ValueError):
        return False


@contextlib.contextmanager
def compute_context() -> Iterator[None]:
    """Inside a task that runs on a Dask worker (``DaskTaskRunner``), hand the library's
    ``dask.compute`` calls to the cluster through a seceded worker client; elsewhere use
    whatever scheduler the flow set up (:func:`dask_engine`)."""
    if _on_dask_worker():
        from prefect_dask import get_dask_client

        with get_dask_client():
            yield
    else:
        yield


def dask_settings(config: str, address: str | None = None) -> DaskConfig:
    """The Dask set-up of a flow run: ``address`` (a flow parameter) > the config's ``dask:``
    block / ``DASK_SCHEDULER_ADDRESS`` > a local cluster sized to the machine (the default
    for flows when the config has no ``dask:`` block)."""
    cfg = RunConfig.load(config)
    if address:
        return DaskConfig(scheduler="distributed", address=address)
    if "dask" in cfg.model_fields_set or os.environ.get("DASK_SCHEDULER_ADDRESS"):
        return cfg.dask
    return DaskConfig(scheduler="distributed")


@contextlib.contextmanager
def dask_engine(config: str, address: str | None = None) -> Iterator[DaskConfig]:
    """Run the flow body with its Dask scheduler (``ecoraster.run.dask_scheduler``)."""
    settings = dask_settings(config, address)
    with dask_scheduler(settings):
        yield settings


# -- progress -------------------------------------------------------------------------------------

class ProgressArtifact:
    """A Prefect progress artifact updated from the library's ``(name, done, total)``
    callbacks, at most once a second (and at 100 %)."""

    def __init__(self, description: str, min_interval_s: float = 1.0):
        self.min_interval_s = min_interval_s
        self._last = 0.0
        try:
            self.artifact_id = create_progress_artifact(progress=0.0, description=description)
        except Exception:  # no API reachable: progress is a nicety, never a failure
            self.artifact_id = None

    def __call__(self, name: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self.artifact_id is None or (done < total and now - self._last < self.min_interval_s):
            return
        self._last = now
        try:
            update_progress_artifact(self.artifact_id, progress=100.0 * done / max(total, 1))
        except Exception:
            pass


def _log_outcome(o: dict[str, Any]) -> None:
    logger = get_run_logger()
    if o["computed"]:
        logger.info("%s: computed in %.1f s (%d file(s))", o["name"], o["seconds"], len(o["outputs"]))
    else:
        logger.info("%s: unchanged inputs, reused (key %s…)", o["name"], o["key"][:12])


# -- tasks ----------------------------------------------------------------------------------------

@task(name="prepare", cache_policy=NO_CACHE, **IO_RETRIES)
def prepare_task(config: str, workspace: str, overlay: str | None, services: list[str] | None,
                 force: bool = False) -> str:
    staging = steps.prepare(config, workspace, overlay=overlay, services=services, force=force)
    get_run_logger().info("validated %s; staging %s", config, staging)
    return staging


@task(name="verify-inputs", cache_policy=NO_CACHE, **IO_RETRIES)
def verify_inputs_task(config: str, workspace: str, overlay: str | None, services: list[str] | None) -> dict[str, str]:
    seen = steps.verify_inputs(config, workspace, overlay=overlay, services=services)
    get_run_logger().info("inputs checked: %s", ", ".join(seen))
    return seen


@task(name="service", task_run_name="service-{service_id}", cache_policy=NO_CACHE, **IO_RETRIES)
def service_task(config: str, workspace: str, staging: str, service_id: str, overlay: str | None,
                 force: bool = False) -> dict[str, Any]:
    get_run_logger().info("%s: checking cache, computing if needed", service_id)
    with compute_context():
        o = steps.service_step(config, workspace, staging, service_id, overlay=overlay, force=force,
                               progress=ProgressArtifact(f"{service_id}: tiles written"))
    _log_outcome(o)
    return o


@task(name="value", task_run_name="value-{service[name]}", cache_policy=NO_CACHE, **IO_RETRIES)
def value_task(config: str, workspace: str, staging: str, service: dict[str, Any], overlay: str | None,
               force: bool = False) -> dict[str, Any]:
    with compute_context():
        o = steps.value_step(config, workspace, staging, service, overlay=overlay, force=force)
    _log_outcome(o)
    return o


@task(name="zonal", task_run_name="zonal-{zone_set}", cache_policy=NO_CACHE, **IO_RETRIES)
def zonal_task(config: str, workspace: str, staging: str, zone_set: str, values: list[dict[str, Any]],
               overlay: str | None, force: bool = False) -> dict[str, Any]:
    o = steps.zonal_step(config, workspace, staging, zone_set, values, overlay=overlay, force=force)
    _log_outcome(o)
    return o


@task(name="products", cache_policy=NO_CACHE, **IO_RETRIES)
def products_task(config: str, workspace: str, staging: str, values: list[dict[str, Any]],
                  zonal: list[dict[str, Any]], overlay: str | None, force: bool = False) -> dict[str, Any]:
    o = steps.products_step(config, workspace, staging, values, zonal, overlay=overlay, force=force)
    _log_outcome(o)
    return o


@task(name="commit", cache_policy=NO_CACHE, **IO_RETRIES)
def finish_task(config: str, workspace: str, staging: str, outcomes: list[dict[str, Any]], overlay: str | None,
                services: list[str] | None, extra_manifest: dict[str, Any] | None = None,
                seen_scenes: dict[str, str] | None = None) -> dict[str, Any]:
    summary = steps.finish(config, workspace, staging, outcomes, overlay=overlay, services=services,
                           extra_manifest=extra_manifest, seen_scenes=seen_scenes)
    logger = get_run_logger()
    if summary["changed"]:
        logger.info("committed %s into %s (computed: %s)", staging, workspace, ", ".join(summary["computed"]))
    else:
        logger.info("nothing changed; %s kept as it is", summary["manifest"])
    return summary


@task(name="totals-artifact", cache_policy=NO_CACHE, **IO_RETRIES)
def totals_artifact_task(config: str, values: list[dict[str, Any]], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """A table artifact of the run's totals (实物量 / 价值量 per output)."""
    cfg = RunConfig.load(config)
    rows = totals_rows(values)
    key = "".join(c if c.isalnum() else "-" for c in f"gep-totals-{cfg.region}-{cfg.year}".lower())
    changed = "updated" if summary.get("changed") else "unchanged"
    description = (f"GEP totals, {cfg.region_name or cfg.region} {cfg.year} ({changed}); "
                   f"manifest `{summary.get('manifest')}`")
    try:
        create_table_artifact(table=rows, key=key, description=description)
    except Exception as exc:
        get_run_logger().warning("could not create the totals artifact: %s", exc)
    return rows


def totals_rows(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per output raster of every (valued) service: float64 total and its unit."""
    rows = []
    for v in values:
        res = steps._read_result(v["path"])
        for out_id, rec in res.outputs.items():
            rows.append({"service": res.service, "output": out_id, "kind": rec.kind, "total": rec.total,
                         "units": rec.units, "per": rec.per, "recomputed": v["computed"]})
    return rows


def run_steps(config: str, workspace: str, staging: str, *, overlay: str | None, services: list[str] | None,
              force: bool, extra_manifest: dict[str, Any] | None = None,
              seen_scenes: dict[str, str] | None = None) -> dict[str, Any]:
    """Submit every step as a task (services in parallel; valuation after its service; zone
    tables after every valuation; products; commit) and return the commit summary. Call from
    inside a flow. The staging folder is removed if anything fails."""
    try:
        verify = verify_inputs_task.submit(config, workspace, overlay, services)
        plan = steps.plan_for(config, overlay)
        svc_futures = [service_task.submit(config, workspace, staging, sid, overlay, force, wait_for=[verify])
                       for sid in steps.chosen_services(plan, services)]
        value_futures = [value_task.submit(config, workspace, staging, f, overlay, force) for f in svc_futures]
        zonal_futures = [zonal_task.submit(config, workspace, staging, name, value_futures, overlay, force)
                         for name in plan.config.zones]
        prod_future = products_task.submit(config, workspace, staging, value_futures, zonal_futures, overlay, force)
        outcomes = [f.result() for f in [*svc_futures, *value_futures, *zonal_futures, prod_future]]
        summary = finish_task(config, workspace, staging, outcomes, overlay, services, extra_manifest, seen_scenes)
    except BaseException:
        steps.discard(staging)
        raise
    values = [o for o in summary["outcomes"] if o["name"].startswith("value.")]
    totals_artifact_task(config, values, summary)
    publish_run_summary(config, workspace, summary)
    return summary
