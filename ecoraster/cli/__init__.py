"""``eco``: the command line of ecoraster (typer). Every command calls the library.

- :mod:`.main`: the app, ``list`` / ``getspec`` / ``validate`` / ``run`` / ``zonal``;
- :mod:`.ingest`, :mod:`.products`, :mod:`.query`, :mod:`.flows`: command groups that add
  themselves to the app with ``register(app)``.
"""

from .main import app, main

__all__ = ["app", "main"]
