"""doodle_engine: rebuild, check, remap and colorize USGS Doodler labels.

The public names below are loaded on first use (scikit-image's ``lazy_loader``), so
``import doodle_engine`` and the command line start without importing the whole engine.
"""

import lazy_loader as lazy

from .version import __version__ as __version__

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submod_attrs={
        "errors": ["DoodleError"],
        "inputs": ["load"],
        "npz": ["save"],
        "png": ["load_session", "load_triple"],
        "reconstruct": ["Reconstruction", "reconstruct"],
        "record": ["DoodleRecord", "NO_CLASS"],
        "remapping": ["remap"],
        "settings": ["ERAS", "Settings", "decode_settings"],
    },
)
