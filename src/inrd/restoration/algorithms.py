"""The former name of :mod:`inrd.restoration.common`: kept for :mod:`.posterior`'s imports only; new code
imports from :mod:`.common`."""

from .common import fidelity, positive, setup  # noqa: F401
