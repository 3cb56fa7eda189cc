"""Prefect flows of ecoraster: thin wiring of library calls into tasks that pass paths and ids."""
