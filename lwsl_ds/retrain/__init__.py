"""Retraining one arch from scratch: job (checked inputs), recipe (optimizer, schedule), EMA, step, hooks,
evaluation, checkpoints, and ``trainer.run`` (the super-net's hook-based loop with these).

``launchers/retrain.py`` composes these; heavy imports (DeepSpeed) stay inside ``trainer``.
"""
