"""One super-net training run from an experiment config: build, train, finalize.

Both training paths start here: the data-parallel run (:func:`train_supernet`, every rank trains every
layer group) and the layer-parallel run (``lwsl_ds.parallel.run``, rank set g owns layer group g). They
share the request a launcher parsed (:class:`RunRequest`), the super-net folder and CPU thread split
(:func:`open_run`), everything built from the config in one order, so the same seed gives the same initial
weights on either path (:func:`build_run`), the recorded config and ``ds_config.json``
(:func:`write_run_config`) and the atomic ``supernet.pt`` write (:func:`save_supernet`).

Example (what ``launchers/train.py`` runs on every rank)::

    from lwsl_ds.supernet_run import RunRequest, train_supernet
    req = RunRequest.load("configs/train_demo.yaml", ["train.max_steps=20"], "ds_configs/train_cpu.json")
    train_supernet(req, Preemption.install())
"""

from .build import RunRequest, SuperNetRun, build_run, extend_schedule, open_run, supernet_seed, write_run_config
from .data_parallel import train_supernet
from .finalize import save_supernet

__all__ = ["RunRequest", "SuperNetRun", "build_run", "extend_schedule", "open_run", "supernet_seed",
           "write_run_config", "train_supernet", "save_supernet"]
