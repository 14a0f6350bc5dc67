"""Search spaces, architectures, the super-net and standalone sub-nets."""

from .arch import Arch, all_archs, describe, load_arch, parse_arch, sample_arch, save_arch
from .spec import PRESETS, LayerSpec, SearchSpace, load_space
from .supernet import SuperNet
from .subnet import SubNet, build_subnet, export_subnet, load_subnet_weights, materialize

__all__ = ["Arch", "all_archs", "describe", "load_arch", "parse_arch", "sample_arch", "save_arch", "PRESETS",
           "LayerSpec", "SearchSpace", "load_space", "SuperNet", "SubNet", "build_subnet", "export_subnet",
           "load_subnet_weights", "materialize"]
