"""coord: a coordination service in the family of Apache ZooKeeper, and its SDK."""

from coord.protocol._errors import *  # noqa: F403
from coord.protocol._errors import __all__ as _errors_all

__version__ = "0.1.0"

__all__ = ["__version__", *_errors_all]
