"""``eco``: the command line of ecoraster (typer). Every command calls the library.

- :mod:`.main`: the app, ``list`` / ``getspec`` / ``validate`` / ``run`` / ``zonal``;
- :mod:`.ingest`, :mod:`.products`, :mod:`.query`, :mod:`.reports`: command groups that add
  themselves to the app with ``register(app)``; other packages add theirs through the entry-point
  group ``ecoraster.cli`` (``flows/cli.py`` adds ``eco flow``).
"""

from .main import app, main

__all__ = ["app", "main"]
