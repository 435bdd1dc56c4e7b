"""doodle_engine: rebuild, check, remap and colorize USGS Doodler labels."""

from .errors import DoodleError
from .io import NO_CLASS, DoodleRecord, load, save
from .pngload import load_session, load_triple
from .reconstruct import Reconstruction, reconstruct
from . import remap  # noqa: E402  the module, callable as remap(labels, mapping, ...)
from .settings import ERAS, Settings, decode_settings

__all__ = ["DoodleError", "DoodleRecord", "ERAS", "NO_CLASS", "Reconstruction", "Settings",
           "decode_settings", "load", "load_session", "load_triple", "reconstruct", "remap", "save"]
__version__ = "0.1.0"
