"""Retraining one arch from scratch: recipe (optimizer, schedule), EMA, atomic checkpoints, the loop.

``launchers/retrain.py`` composes these; heavy imports (DeepSpeed) stay inside ``trainer``.
"""
