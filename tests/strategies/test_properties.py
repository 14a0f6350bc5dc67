"""Properties of the algorithms themselves (reference backend, no DeepSpeed)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from lwsl_ds.engines import ReferenceBackend
from lwsl_ds.strategies import get_strategy, step_rng
from tests.engines.harness import batches, ds_config, tiny_net, train


def _grad_owners(net) -> set[str]:
    """Module paths (two/three components) of parameters with a non-zero gradient."""
    out = set()
    for name, p in net.named_parameters():
        if p.grad is not None and p.grad.abs().sum() > 0:
            parts = name.split(".")
            out.add(".".join(parts[:3] if parts[0] == "layers" else parts[:2] if parts[0] == "decoders" else parts[:1]))
    return out


@pytest.mark.parametrize("i", [0, 2, 3])
def test_greedy_loss_of_layer_i_grads_only_layer_i(i):
    net = tiny_net()
    s = get_strategy("greedy")
    x = torch.randn(4, net.space.layers[i].in_channels, net.space.layers[i].in_resolution,
                    net.space.layers[i].in_resolution)
    k = net.space.layers[i].choices[-1]
    loss, _, y = s.choice_loss(net, i, k, x, torch.randint(0, 10, (4,)), ())
    loss.backward()
    name = f"layers.{i}.{net.space.choices[k].name}"
    dec = "head" if i == net.num_layers - 1 else f"decoders.{i}"
    assert _grad_owners(net) == {name, dec}
    assert not y.requires_grad  # x_{i+1} never carries gradient back to layer i


@pytest.mark.parametrize("i", [0, 1, 2])
def test_non_greedy_loss_grads_choice_and_next_decoder_only(i):
    net = tiny_net()
    s = get_strategy("non_greedy")
    spec = net.space.layers[i]
    x = torch.randn(4, spec.in_channels, spec.in_resolution, spec.in_resolution)
    k, k_next = spec.choices[-1], net.space.layers[i + 1].choices[-1]
    nxt = net.choice(i + 1, k_next)
    stats = {n: b.clone() for n, b in nxt.named_buffers()}
    loss, _, _ = s.choice_loss(net, i, k, x, torch.randint(0, 10, (4,)), (k_next,))
    loss.backward()
    dec = "head" if i + 1 == net.num_layers - 1 else f"decoders.{i + 1}"
    assert _grad_owners(net) == {f"layers.{i}.{net.space.choices[k].name}", dec}
    assert all(p.grad is None for p in nxt.parameters())  # sampled choice of layer i+1 is read-only
    for n, b in nxt.named_buffers():  # ... and its BN running statistics are not updated
        assert torch.equal(b, stats[n]), n


def test_non_greedy_step_changes_only_trained_units():
    """A full step changes every choice, decoders 0..n-2 and the head, never the stem's decoder."""
    net = tiny_net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    s = get_strategy("non_greedy")
    b = ReferenceBackend(net, s, ds_config(0))
    x, y = batches(1)[0]
    s.step(net, x, y, b, step_rng(0, 0))
    changed = {n.split(".")[0] for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    assert "stem_decoder" not in changed
    assert {"stem", "layers", "decoders", "head"} <= changed


class RecordingBackend(ReferenceBackend):
    """Reference backend that records, per backward call, which units received gradient."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls: list[set[str]] = []
        self.steps = 0

    def backward(self, layer, loss):
        units = [u for us in self.plan.units for u in us if u.has_params]
        before = {u.name: [None if p.grad is None else p.grad.clone() for p in u.module.parameters()] for u in units}
        super().backward(layer, loss)
        got = set()
        for u in units:
            for p, g0 in zip(u.module.parameters(), before[u.name]):
                if p.grad is not None and (g0 is None or not torch.equal(p.grad, g0)):
                    got.add(u.name)
        self.calls.append(got)

    def step(self):
        self.steps += 1
        super().step()


@pytest.mark.parametrize("strategy", ["greedy", "non_greedy"])
def test_strict_fairness(strategy):
    """Every choice of every layer gets gradient from exactly one backward call, and one update, per step."""
    net = tiny_net()
    s = get_strategy(strategy)
    b = RecordingBackend(net, s, ds_config(0))
    x, y = batches(1)[0]
    s.step(net, x, y, b, step_rng(0, 0))
    assert b.steps == 1
    for i, layer in enumerate(net.space.layers):
        for k in layer.choices:
            name = f"layers.{i}.{net.space.choices[k].name}"
            if any(True for _ in net.choice(i, k).parameters()):
                assert sum(name in c for c in b.calls) == 1, name
    # each backward trains exactly one choice (plus decoders/stem)
    assert all(sum(u.startswith("layers.") for u in c) <= 1 for c in b.calls)
    assert len(b.calls) == sum(b.plan.calls)


def test_spos_leaves_unsampled_choices_and_their_adam_state_alone_reference():
    net, b, outs = train("reference", "spos", ds_config(0), steps=1)
    _check_spos_freeze(net, b, b.optimizers)


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_spos_leaves_unsampled_choices_and_their_adam_state_alone_zero(stage):
    net, b, outs = train("deepspeed", "spos", ds_config(stage), steps=1)
    _check_spos_freeze(net, b, b.optimizers)


def _opt_state(optimizers) -> dict:
    out = {}
    for opt in optimizers:
        for g in opt.param_groups:
            out[g["unit"]] = [{k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state.get(p, {}).items()}
                              for p in g["params"]]
    return out


def _check_spos_freeze(net, backend, optimizers):
    s = get_strategy("spos")
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    state = _opt_state(optimizers)
    x, y = batches(2)[1]
    rng_step = 1
    from lwsl_ds.space import sample_arch
    arch = sample_arch(net.space, step_rng(0, rng_step))
    s.step(net, x, y, backend, step_rng(0, rng_step))
    on_path = {f"layers.{i}.{net.space.choices[k].name}" for i, k in enumerate(arch)}
    new_state = _opt_state(optimizers)
    moved = set()
    for n, p in net.named_parameters():
        unit = ".".join(n.split(".")[:3]) if n.startswith("layers.") else n.split(".")[0]
        if not torch.equal(p, params[n]):
            moved.add(unit)
    choice_units = {u for u in new_state if u.startswith("layers.")}
    for u in choice_units - on_path:
        assert u not in moved, f"unsampled {u} moved"
        for a, b in zip(state[u], new_state[u]):
            assert a.keys() == b.keys()
            for k in a:
                assert torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])), (u, k)
    sampled_with_params = {u for u in choice_units & on_path}
    assert sampled_with_params and sampled_with_params <= moved


class PhaseRecorder:
    def __init__(self):
        self.phases = []

    @contextlib.contextmanager
    def phase(self, name, layer):
        self.phases.append((name, layer))
        yield


@pytest.mark.parametrize("strategy", ["spos", "greedy", "non_greedy"])
def test_tracker_sees_each_layer_phase(strategy):
    net = tiny_net()
    s = get_strategy(strategy)
    b = ReferenceBackend(net, s, ds_config(0))
    rec = PhaseRecorder()
    x, y = batches(1)[0]
    s.step(net, x, y, b, step_rng(0, 0), tracker=rec)
    n = net.num_layers
    if strategy == "spos":
        assert rec.phases == [("stem", -1)] + [("layer", i) for i in range(n)] + [("head", n), ("backward", n)]
    else:
        assert rec.phases == [("stem", -1)] + [("layer", i) for i in range(n)]


def test_layer_input_init_input_differs_only_where_shapes_match():
    outs = {}
    for init in ("zero", "input"):
        net = tiny_net()
        s = get_strategy("greedy", layer_input_init=init)
        b = ReferenceBackend(net, s, ds_config(0))
        x, y = batches(1)[0]
        outs[init] = s.step(net, x, y, b, step_rng(0, 0))
    # layers 0 and 2 change shape (stride 2): their inputs, hence losses, are the same; layer 3 sees x_2 + mean
    assert torch.equal(outs["zero"]["loss/layer1"], outs["input"]["loss/layer1"])
    assert not torch.equal(outs["zero"]["loss/layer3"], outs["input"]["loss/layer3"])
