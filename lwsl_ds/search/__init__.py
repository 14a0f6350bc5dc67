"""Search: MACs/params-constrained evolutionary search scoring archs with inherited super-net weights.

Heavy parts (fvcore tracing on a cache miss, torch.distributed, tqdm, matplotlib) load only when used.
"""

from .constraints import Constraints, InfeasibleConstraint
from .evolution import LOG_FILE, STATE_FILE, Search, SearchResult, constraints_from_config

__all__ = ["Constraints", "InfeasibleConstraint", "Search", "SearchResult", "constraints_from_config", "STATE_FILE",
           "LOG_FILE", "Evaluator", "load_supernet_from_run"]


def __getattr__(name: str):
    # Lazy: the evaluator and the run-dir loader pull in torch modules the search loop itself does not need.
    if name == "Evaluator":
        from .evaluator import Evaluator

        return Evaluator
    if name == "load_supernet_from_run":
        from .loading import load_supernet_from_run

        return load_supernet_from_run
    raise AttributeError(name)
