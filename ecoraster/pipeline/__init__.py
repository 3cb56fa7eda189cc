"""Running a configuration: the one runner, its stages, the workspace and the cache.

- :mod:`.runner`: :func:`run` (the one orchestrator), :func:`validate_run`, executors;
- :mod:`.stages`: the stage functions and their typed outcomes;
- :mod:`.workspace`: every path of a workspace, staging, commit, lock;
- :mod:`.cache`: derived keys and the record store;
- :mod:`.incremental`: new scenes (overlay catalogue, dependents, folder scan).
"""

from ..config import RunPlan, load_plan
from .runner import run, validate_run
from .stages import RunResult
from .workspace import Workspace

__all__ = ["RunPlan", "RunResult", "Workspace", "load_plan", "run", "validate_run"]
