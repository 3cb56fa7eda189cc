"""HTTP API and map page (FastAPI) over ecoraster.query."""
