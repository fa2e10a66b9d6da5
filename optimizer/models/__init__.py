"""Model handling: read and describe ONNX files (``inspect``), make them quantization-ready (``preprocess``),
convert PyTorch programs and modules to ONNX (``convert``), and keep them in a content-addressed store (``store``).

May import: ``optimizer.types``, ``optimizer.errors``, ``optimizer.settings``. Nothing here runs a model.
"""
