"""FLOPs (MACs) and parameter accounting: fvcore-counted cost tables per (layer, choice).

fvcore is imported only when a table is counted (``build_cost_table`` on a cache miss, ``count_module``).
"""

from .table import METRICS, ArchCost, CostTable, archs_to_array, build_cost_table, default_cache_dir

__all__ = ["METRICS", "ArchCost", "CostTable", "archs_to_array", "build_cost_table", "default_cache_dir",
           "count_module"]


def count_module(module, input_shape):
    """Count one module with fvcore (see :func:`lwsl_ds.flops.counter.count_module`)."""
    from .counter import count_module as _count

    return _count(module, input_shape)
