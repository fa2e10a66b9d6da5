"""Measurement: evaluation and calibration data (``data``), task metrics (``metrics``), honest measurements of a
model on onnxruntime (``evaluate``: size, metric, latency, memory) and what the CPU can do (``hardware``).

May import: ``optimizer.models`` and the base modules (``types``, ``errors``, ``settings``).
"""
