"""Asynchronous layer-parallel super-net training (``train.parallel.mode: layer``).

Rank set g owns layer group g; layer inputs (detached means of the last layer's choice outputs) and
labels flow forward point-to-point through a bounded queue, so group g trains batch t while group g-1
already trains batch t+1. See docs/layer_parallel.md.

Example::

    from lwsl_ds.parallel import ParallelConfig, build_layer_parallel_trainer
    trainer = build_layer_parallel_trainer(net, strategy, ds_config, parallel=ParallelConfig(mode="layer"))
    trainer.train(batches if trainer.topo.is_first else None, max_steps=100)
"""

from .config import ParallelConfig
from .topology import Topology
from .factory import build_layer_parallel_trainer
from .trainer import LayerParallelTrainer, latest_complete_tag, release_unowned

__all__ = ["ParallelConfig", "Topology", "LayerParallelTrainer", "build_layer_parallel_trainer",
           "latest_complete_tag", "release_unowned"]
