"""The compiled (Numba) kernels; importing them turns on the notice of their compilation
when the command asked for it (:mod:`doodle_engine.compiling`)."""

from numba.core import event

from ..compiling import install

install(event)
