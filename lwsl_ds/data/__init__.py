"""Data input: one loader interface (``build_loader``) over DALI and torchvision backends.

DALI is imported only by ``dali_backend`` (and only when that backend is used), torch and
torchvision only by the backends, so importing this package stays cheap.
"""

from ..config.sections.data import DataConfig
from .loader import Loader, build_loader, resolve_backend
from .sources import DataError

__all__ = ["DataConfig", "DataError", "Loader", "build_loader", "resolve_backend"]
