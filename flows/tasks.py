"""Prefect tasks: each is one call of a stage of :mod:`ecoraster.pipeline.stages`, and
:class:`PrefectExecutor` hands them to the one runner (:func:`ecoraster.pipeline.run`), which
keeps the order, the staging folder and the lock. No pipeline logic here.

Every task that reads or writes files retries (``IO_RETRIES``: 3 times, 2 / 10 / 30 s apart
with jitter) when it failed with an ``OSError`` (a file or mount that is not there yet, a
network filesystem hiccup); a bad config or input (``ValueError``) fails at once. Prefect's
own caching is off (``NO_CACHE``): steps are skipped by :mod:`ecoraster.pipeline.cache`,
whose records live in the workspace and work without Prefect.
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
from ecoraster.pipeline import stages
from ecoraster.pipeline.runner import dask_scheduler



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
    """Run a block with the flow's Dask scheduler (``ecoraster.pipeline.runner.dask_scheduler``)."""
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


def _log_outcome(o: stages.StageOutcome) -> None:
    logger = get_run_logger()
    if o.computed:
        logger.info("%s: computed in %.1f s (%d file(s))", o.name, o.seconds, len(o.outputs))
    else:
        logger.info("%s: unchanged inputs, reused (key %s…)", o.name, o.key[:12])


# -- tasks: one stage call each ------------------------------------------------------------------

@task(name="prepare", cache_policy=NO_CACHE, **IO_RETRIES)
def prepare_task(plan, workspace, **kwargs) -> stages.RunState:
    state = stages.prepare(plan, workspace, **kwargs)
    get_run_logger().info("validated; staging %s", state.staging)
    return state


@task(name="verify-inputs", cache_policy=NO_CACHE, **IO_RETRIES)
def verify_inputs_task(state: stages.RunState) -> dict[str, str]:
    seen = stages.verify_inputs(state)
    get_run_logger().info("inputs checked: %s", ", ".join(seen))
    return seen


@task(name="service", task_run_name="service-{service_id}", cache_policy=NO_CACHE, **IO_RETRIES)
def service_task(state: stages.RunState, service_id: str, progress=None) -> stages.ServiceOutcome:
    with compute_context():
        o = stages.run_service(state, service_id, progress or ProgressArtifact(f"{service_id}: tiles written"))
    _log_outcome(o)
    return o


@task(name="value", task_run_name="value-{service.service}", cache_policy=NO_CACHE, **IO_RETRIES)
def value_task(state: stages.RunState, service: stages.ServiceOutcome, progress=None) -> stages.ValuationOutcome:
    with compute_context():
        o = stages.value_service(state, service, progress)
    _log_outcome(o)
    return o


@task(name="zonal", task_run_name="zonal-{zone_set}", cache_policy=NO_CACHE, **IO_RETRIES)
def zonal_task(state: stages.RunState, zone_set: str, values: list) -> stages.ZonalOutcome:
    o = stages.aggregate_zones(state, zone_set, values)
    _log_outcome(o)
    return o


@task(name="products", cache_policy=NO_CACHE, **IO_RETRIES)
def products_task(state: stages.RunState, values: list, zonal: list) -> stages.ProductsOutcome:
    o = stages.build_products(state, values, zonal)
    _log_outcome(o)
    return o


@task(name="commit", cache_policy=NO_CACHE, **IO_RETRIES)
def finish_task(state: stages.RunState, outcomes: list, **kwargs) -> stages.RunResult:
    result = stages.finish(state, outcomes, **kwargs)
    logger = get_run_logger()
    if result.changed:
        logger.info("committed into %s (computed: %s)", result.workspace, ", ".join(result.computed) or "-")
    else:
        logger.info("nothing changed; %s kept as it is", result.manifest_path)
    return result


class PrefectExecutor:
    """Runs each stage the runner asks for as its Prefect task (futures in, futures out)."""

    TASKS = {"prepare": prepare_task, "verify": verify_inputs_task, "service": service_task,
             "value": value_task, "zonal": zonal_task, "products": products_task, "commit": finish_task}

    def submit(self, stage: str, *args: Any, **kwargs: Any):
        return self.TASKS[stage].submit(*args, **kwargs)


@task(name="totals-artifact", cache_policy=NO_CACHE, **IO_RETRIES)
def totals_artifact_task(config: str, result: stages.RunResult) -> list[dict[str, Any]]:
    """A table artifact of the run's totals (实物量 / 价值量 per output)."""
    cfg = RunConfig.load(config)
    rows = totals_rows(result)
    key = "".join(c if c.isalnum() else "-" for c in f"gep-totals-{cfg.region}-{cfg.year}".lower())
    changed = "updated" if result.changed else "unchanged"
    description = (f"GEP totals, {cfg.region_name or cfg.region} {cfg.year} ({changed}); "
                   f"manifest `{result.manifest_path}`")
    try:
        create_table_artifact(table=rows, key=key, description=description)
    except Exception as exc:
        get_run_logger().warning("could not create the totals artifact: %s", exc)
    return rows


def totals_rows(result: stages.RunResult) -> list[dict[str, Any]]:
    """One row per output raster of every (valued) service: float64 total and its unit."""
    recomputed = set(result.computed)
    return [{"service": sid, "output": out_id, "kind": rec.kind, "total": rec.total, "units": rec.units,
             "per": rec.per, "recomputed": f"value.{sid}" in recomputed}
            for sid, res in result.services.items() for out_id, rec in res.outputs.items()]


def flow_summary(result: stages.RunResult, **extra: Any) -> dict[str, Any]:
    """What a flow returns: the run's summary and every step's outcome (JSON-able)."""
    return {**result.summary(), "outcomes": [o.summary() for o in result.outcomes], **extra}


# -- update reports -------------------------------------------------------------------------------

def report_artifact(key: str, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """A table artifact of an update flow: what was taken (``rows``) and what was recomputed."""
    recomputed = ", ".join(summary.get("computed") or []) or "nothing"
    create_table_artifact(key=key, table=rows or [{"taken": "nothing new"}],
                          description=f"Taken: {len(rows)}; recomputed: {recomputed}; "
                                      f"reused: {len(summary.get('cached') or [])} step(s)")
