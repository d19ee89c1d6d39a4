"""Triton kernels (shipped as ``scalingrl.kernels``); each has a pure-torch twin.

Callers use ``scalingrl.ops``, which dispatches between a kernel and its twin by device.
"""
