"""The former name of :mod:`inrd.restoration.result`: kept for :mod:`.posterior`'s imports only; new code
imports from :mod:`.result`."""

from .result import PnPResult, diagnose  # noqa: F401
