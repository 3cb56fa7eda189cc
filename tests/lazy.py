"""A guard that lazy code does not compute early (xarray's ``raise_if_dask_computes``)."""

from __future__ import annotations

import dask


class CountingScheduler:
    """A dask scheduler that counts computes and fails past ``max_computes``."""

    def __init__(self, max_computes: int = 0) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(f"too many dask computations: {self.total_computes} > {self.max_computes}")
        return dask.get(dsk, keys, **kwargs)


def raise_if_dask_computes(max_computes: int = 0):
    """Context manager: any dask compute beyond ``max_computes`` raises RuntimeError."""
    return dask.config.set(scheduler=CountingScheduler(max_computes))
