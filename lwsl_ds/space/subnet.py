"""Sub-nets: the network of one arch as a standalone ``nn.Module``, and its export.

``build_subnet`` makes a fresh one (retraining from scratch); ``materialize`` copies the super-net's
weights so that, in eval mode, its output equals the super-net's path output exactly. ``export_subnet``
writes weights (safe to load with ``weights_only=True``), the arch YAML, and a ``torch.export`` program
(eval mode, dynamic batch) that loads with plain ``torch.export.load(path).module()`` and no lwsl_ds code.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from .arch import Arch, parse_arch, save_arch
from .builders import build_choice, build_head, build_stem
from .spec import SearchSpace
from ..common.atomic import atomic_path

__all__ = ["SubNet", "build_subnet", "materialize", "export_subnet", "load_subnet_weights"]


class SubNet(nn.Module):
    """stem -> chosen layers -> head, with plain modules."""

    def __init__(self, stem: nn.Module, layers: list[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.layers = nn.Sequential(*layers)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled head features before the FC."""
        return self.head.features(self.layers(self.stem(x)))


def build_subnet(space: SearchSpace, arch: Arch, *, num_outputs: int | None = None,
                 dropout: float | None = None) -> SubNet:
    """A freshly initialised sub-net of ``arch`` (classifier FC with ``num_outputs`` classes)."""
    arch = parse_arch(space, arch)
    fc = nn.Linear(space.head.features, num_outputs or space.num_classes)
    layers = [build_choice(space, space.layers[i], k) for i, k in enumerate(arch)]
    return SubNet(build_stem(space), layers, build_head(space, fc, dropout))


def materialize(supernet: nn.Module, arch: Arch) -> SubNet:
    """Standalone copy of the super-net path ``arch`` (weights and BN statistics copied)."""
    arch = parse_arch(supernet.space, arch)
    layers = [copy.deepcopy(supernet.choice(i, k)) for i, k in enumerate(arch)]
    return SubNet(copy.deepcopy(supernet.stem), layers, copy.deepcopy(supernet.head))


def load_subnet_weights(path: str | Path, subnet: SubNet) -> SubNet:
    """Load a state dict written by :func:`export_subnet` (no unpickling of arbitrary objects)."""
    from ..common.safe_io import load_tensor_file

    state = load_tensor_file(path)
    subnet.load_state_dict(state)
    return subnet


def export_subnet(out_dir: str | Path, subnet: SubNet, space: SearchSpace, arch: Arch, **extra) -> dict[str, Path]:
    """Write ``weights.pt``, ``arch.yaml`` and ``subnet.pt2`` (torch.export) into ``out_dir`` (atomic renames)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    was_training = subnet.training
    subnet.eval()
    weights = out / "weights.pt"
    with atomic_path(weights) as tmp:
        torch.save(subnet.state_dict(), tmp)
    # torch.export (TorchScript is deprecated in torch 2.14); batch size stays dynamic. Costs ~2-5 s.
    example = torch.zeros(2, space.in_channels, space.resolution, space.resolution)
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(copy.deepcopy(subnet).cpu().float().eval(), (example,),
                                  dynamic_shapes=({0: batch},))
    exported = out / "subnet.pt2"
    with atomic_path(exported, keep_suffix=True) as tmp:  # torch.export wants the .pt2 suffix
        torch.export.save(program, str(tmp))
    subnet.train(was_training)
    return {"weights": weights, "arch": save_arch(out / "arch.yaml", space, arch, **extra), "program": exported}
