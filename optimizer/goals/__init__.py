"""Goals in plain words: the deterministic reader from English to a :class:`~optimizer.types.Goal` (``parse``).

May import: the base modules only (``types``, ``errors``). No model, no backend, no network.
"""
