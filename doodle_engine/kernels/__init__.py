"""The compiled kernels (Numba), each with the NumPy or library twin its tests compare it to."""
