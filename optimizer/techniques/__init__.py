"""Techniques: what turns a model into a candidate. onnxruntime quantization (``quantize``), pruning (``prune``),
quantization-aware training and neural-compressor (``qat``), chains of steps (``chain``) and the PyTorch backend
they share (``torch_backend``, the only module that imports torch at the top).

May import: ``optimizer.measure``, ``optimizer.models`` and the base modules. Never the search or the zoo.
"""
