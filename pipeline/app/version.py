"""The installed ferflow's version, for `ferflow --version` and the API's /docs."""

from __future__ import annotations


def installed_version() -> str:
    """The version of the installed distribution; read only when asked (importlib.metadata
    costs 0.15 s of start-up, which every `ferflow` command would otherwise pay)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ferflow")
    except PackageNotFoundError:
        return "(not installed)"
