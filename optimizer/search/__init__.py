"""The search: per-layer sensitivity (``profile``), one trial (``trial``), where trials run (``executors`` on the
process's Ray runtime, ``runtime``), the goal-directed sweep (``sweep``) and the Pareto front and recommendation
(``pareto``, pure functions).

May import: ``optimizer.techniques``, ``optimizer.measure``, ``optimizer.models``, ``optimizer.goals`` and the base
modules. Never the zoo (zoo defaults are the pipeline's business, ``optimizer.optimize``).
"""
