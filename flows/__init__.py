"""Prefect flows of ecoraster: thin wiring of library calls into tasks that pass paths and ids.

``flows.steps`` holds the steps as plain functions (no Prefect); ``flows.annual`` and
``flows.new_imagery`` run them as Prefect tasks; ``flows/serve.py`` serves both deployments.
"""

from . import _settings  # noqa: F401  (offline, quiet environment before Prefect is imported)
