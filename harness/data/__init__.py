"""Data for a run: `load_data(DataConfig) -> Data` (see loading.py), and `check_source`.

This top level imports no torch, numpy or image code: `check_source` and `DataError` come from the
light sources.py, and the rest is imported on first use, so a caller (the command line) can reject
a bad source in a fraction of a second, before it pays seconds to import the training stack."""

from __future__ import annotations

from harness.data.sources import DataError, Source, check_source

__all__ = ["Data", "DataError", "Source", "TensorBatches", "check_source", "load_data"]
_LOADING = {"Data", "TensorBatches", "load_data"}


def __getattr__(name: str):
    if name in _LOADING:
        from harness.data import loading
        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
