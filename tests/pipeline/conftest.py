"""The fake GEP service, its price table and CPI (see tests/products/conftest.py)."""

from ..products.conftest import CPI_CSV, PRICES, fake_service, setup_run  # noqa: F401
