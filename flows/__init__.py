"""Prefect flows of ecoraster: thin wiring of library calls into tasks that pass paths and ids.

The pipeline (stages, runner, incremental updates) is :mod:`ecoraster.pipeline`; here each
stage call is wrapped in a Prefect task (``flows.tasks``), ``flows.annual`` and
``flows.new_imagery`` hand those tasks to the one runner, ``flows/serve.py`` serves both deployments.
"""

from . import _settings  # noqa: F401  (offline, quiet environment before Prefect is imported)
