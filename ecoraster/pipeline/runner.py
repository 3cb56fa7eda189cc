"""The one orchestrator of a run: :func:`run`.

``eco run``, ``eco flow … --no-prefect``, notebooks and the Prefect flows all call
:func:`run`; they differ only in the *executor* that calls each stage of
:mod:`.stages`: :class:`Sequential` (this process, in order) or the Prefect executor of
``flows.tasks`` (one task per stage call, services in parallel). The order of the stages,
the staging folder, the lock and the clean-up on failure live here only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import dask

from ..config import DaskConfig, RunConfig, RunPlan, load_plan
from ..errors import ConfigError
from . import stages
from .stages import ProgressFn, RunResult
from .workspace import Workspace

log = logging.getLogger(__name__)

#: Stage name (what an executor is asked to run) → function of :mod:`.stages`.
STAGES: dict[str, str] = {
    "prepare": "prepare",
    "verify": "verify_inputs",
    "service": "run_service",
    "value": "value_service",
    "zonal": "aggregate_zones",
    "products": "build_products",
    "commit": "finish",
}


def stage_function(stage: str) -> Callable[..., Any]:
    """The function of a stage name (looked up at call time)."""
    return getattr(stages, STAGES[stage])


class Future(Protocol):
    def result(self) -> Any: ...


class Executor(Protocol):
    """Runs one stage call; returns something with ``.result()``. Arguments may hold earlier
    futures (alone or in lists), which the executor resolves."""

    def submit(self, stage: str, *args: Any, **kwargs: Any) -> Future: ...


class _Done:
    def __init__(self, value: Any):
        self.value = value

    def result(self) -> Any:
        return self.value


def _resolve(x: Any) -> Any:
    if isinstance(x, _Done):
        return x.value
    if isinstance(x, list):
        return [_resolve(v) for v in x]
    return x


class Sequential:
    """Every stage in this process, in order."""

    def submit(self, stage: str, *args: Any, **kwargs: Any) -> _Done:
        return _Done(stage_function(stage)(*[_resolve(a) for a in args], **{k: _resolve(v) for k, v in kwargs.items()}))


@contextlib.contextmanager
def dask_scheduler(cfg: DaskConfig) -> Iterator[None]:
    """Run dask on local threads (default), processes, or an existing distributed
    scheduler (``address`` or the ``DASK_SCHEDULER_ADDRESS`` environment variable)."""
    address = cfg.address or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if cfg.scheduler == "distributed" or address:
        from distributed import Client

        with Client(address) if address else Client(n_workers=cfg.n_workers, dashboard_address=None) as client:
            log.info("dask: distributed scheduler %s", client.scheduler.address)
            yield
        return
    settings: dict[str, Any] = {"scheduler": cfg.scheduler}
    if cfg.n_workers:
        settings["num_workers"] = cfg.n_workers
    with dask.config.set(**settings):
        yield


def plan_for(config: str | os.PathLike | RunConfig | RunPlan, workspace: str | os.PathLike | Workspace) -> RunPlan:
    """The plan of a run into ``workspace``: a config is loaded with the workspace's overlay
    catalogue (scenes ingested into it earlier), if any."""
    if isinstance(config, RunPlan):
        return config
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    return load_plan(config, overlay=ws.existing_overlay())


def run(
    plan: str | os.PathLike | RunConfig | RunPlan,
    workspace: str | os.PathLike | Workspace,
    *,
    services: list[str] | None = None,
    cache: bool = True,
    progress: ProgressFn | None = None,
    executor: Executor | None = None,
    dask_config: DaskConfig | None = None,
    checksums: bool = True,
    staging: Path | None = None,
    extra_manifest: dict[str, Any] | None = None,
    seen_scenes: dict[str, str] | None = None,
) -> RunResult:
    """Validate, compute every (chosen) service, value, aggregate to zones, build the products,
    write ``run.json``; then move everything into ``workspace`` at once.

    Parameters
    ----------
    plan : a resolved :class:`RunPlan`, or a config (path or object) to resolve.
    cache : reuse every step whose key matches its record (``False``: recompute everything,
        as ``eco run --force``); records are written either way.
    executor : who runs each stage (default :class:`Sequential`; flows pass Prefect's).
    dask_config : the Dask set-up (default: the config's ``dask:`` block).
    staging : a staging folder already holding files of this run (an update's overlay).

    Nothing is written if validation fails; a failure later on removes the staging folder and
    leaves earlier results in ``workspace`` untouched.
    """
    t_start = time.monotonic()
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    ex = executor or Sequential()
    with ws.lock():
        plan = plan_for(plan, ws)
        state = ex.submit("prepare", plan, ws, services=services, reuse=cache, checksums=checksums,
                          staging=staging).result()
        try:
            ex.submit("verify", state).result()
            with dask_scheduler(dask_config or plan.config.dask):
                extra = {"progress": progress} if progress else {}
                svc = [ex.submit("service", state, sid, **extra) for sid in state.services]
                values = [ex.submit("value", state, s, **extra) for s in svc]
                zonal = [ex.submit("zonal", state, name, values) for name in plan.config.zones]
                products = ex.submit("products", state, values, zonal)
                outcomes = [f.result() for f in [*svc, *values, *zonal, products]]
            result = ex.submit("commit", state, outcomes, extra_manifest=extra_manifest,
                               seen_scenes=seen_scenes).result()
        except BaseException:
            Workspace.discard(state.staging)
            raise
    result.timings["total"] = time.monotonic() - t_start
    return result


def validate_run(config: str | os.PathLike | RunConfig | RunPlan, services: list[str] | None = None):
    """Every problem of a run, without computing anything. Never raises."""
    from ..errors import EcorasterError
    from ..spec import Issue

    try:
        plan = config if isinstance(config, RunPlan) else load_plan(config)
    except EcorasterError as exc:
        return [Issue(("config",), str(exc))]
    return stages.validate_plan(plan, services)


#: Where ``annual_gep(region=…)`` looks for ``<region>_<year>.yaml`` and writes outputs.
CONFIG_DIR_ENV = "ECORASTER_CONFIG_DIR"
OUTPUT_DIR_ENV = "ECORASTER_OUTPUT_DIR"
TIMEZONE = ZoneInfo("Asia/Shanghai")


def resolve_run(region: str | None, year: int | None, config: str | None,
                workspace: str | None) -> tuple[str, str]:
    """(config path, workspace) of an annual run.

    With ``config`` given, its ``region`` / ``year`` must match the ones given. Without it the
    config is ``$ECORASTER_CONFIG_DIR/<region>_<year>.yaml`` (default ``./configs``), the year
    defaulting to last calendar year in Asia/Shanghai (the scheduled March run accounts the
    year before). The workspace defaults to ``$ECORASTER_OUTPUT_DIR/<region>_<year>``
    (default ``./outputs``).
    """
    if config is None:
        if not region:
            raise ConfigError("annual run: give `config` or `region` (and `year`)")
        year = year or datetime.now(TIMEZONE).year - 1
        config = str(Path(os.environ.get(CONFIG_DIR_ENV, "configs")) / f"{region}_{year}.yaml")
    cfg = RunConfig.load(config)
    if region and region != cfg.region:
        raise ConfigError(f"{config}: region = {cfg.region!r}, but the flow was asked for {region!r}")
    if year and int(year) != cfg.year:
        raise ConfigError(f"{config}: year = {cfg.year}, but the flow was asked for {year}")
    if workspace is None:
        workspace = str(Path(os.environ.get(OUTPUT_DIR_ENV, "outputs")) / f"{cfg.region}_{cfg.year}")
    return str(Path(config).resolve()), str(Path(workspace).resolve())
