"""lwsl_ds: layer-wise supervised one-shot NAS with one DeepSpeed engine per layer group.

Importing the package is cheap: DeepSpeed, DALI, fvcore and scipy are imported only by the modules
that need them (engines/launchers, data.dali_backend, flops, ranking).
"""

__version__ = "0.1.0"
