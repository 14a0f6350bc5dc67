"""Every backend against the independent oracle (tests/oracle/oracle.py), float64, parameters *and* buffers.

The engine-equivalence tests compare DeepSpeed with the reference backend, both driven by the same
``Strategy.step``; here both are compared with a re-implementation of Alg. 1 / Alg. 2 that shares no code
with them, after 2 steps (the second step reads BN running statistics and optimizer state left by the
first). float64 removes the rounding noise fp32 Adam amplifies on near-zero gradients (see
test_equivalence.py), so the paper's optimizer (Adam, eps 1e-8, L2 weight decay, cosine) is compared on
the reference backend and at ZeRO 0; ZeRO 1/2 round to fp32 inside DeepSpeed whatever the model's dtype,
so they run SGD. Tolerances and the measured noise floors: docs/testing.md.
"""

from __future__ import annotations

import pytest
import torch

from lwsl_ds.strategies import get_strategy, step_rng
from tests.engines.harness import ds_config, state_diffs, train
from tests.oracle import oracle
from tests.oracle.compare import (GROUPS, STEPS, STRATEGIES, TOL_ADAM, TOL_SGD, TOL_ZERO12, UNEVEN, adam,
                                  assert_matches_oracle, data, f64_net, oracle_net, oracle_train, sgd)


def test_oracle_draws_follow_the_shared_rule():
    """The oracle reimplements the seeding rule; it must draw what the strategies draw."""
    for seed, step in [(0, 0), (0, 5), (7, 3)]:
        a, b = oracle.draws(seed, step), step_rng(seed, step)
        assert [a.random() for _ in range(5)] == [b.random() for _ in range(5)]


def test_oracle_imports_no_strategy_or_engine_code():
    """The oracle is independent: its module imports torch and the standard library only (the net comes in)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(oracle))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not [m for m in names if m.startswith("lwsl_ds")], names


def test_oracle_trains_and_moves_bn_statistics():
    """Sanity of the comparison itself: 2 oracle steps move parameters and every trained BN's statistics."""
    fresh, trained = f64_net(), oracle_net("greedy")
    diffs = state_diffs(fresh, trained)
    assert max(v for k, v in diffs.items() if k.endswith("weight")) > 1e-3
    tracked = {k: int(v) for k, v in trained.state_dict().items() if k.endswith("num_batches_tracked")}
    m_last = len(trained.space.layers[-1].choices)
    expected = {k: STEPS * (m_last if k.startswith("head.") else 1) for k in tracked}
    assert tracked == expected  # greedy runs every BN once per step, the head once per last-layer choice


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("objective,opt", [("ce", "adam"), ("ce", "sgd"), ("infonce", "adam")])
def test_reference_backend_equals_oracle(strategy: str, objective: str, opt: str) -> None:
    cfg = {"adam": adam, "sgd": sgd}[opt]()
    net, _, outs = train("reference", strategy, cfg, steps=STEPS, objective=objective, net=f64_net(objective))
    assert_matches_oracle(net, oracle_net(strategy, objective, opt), TOL_ADAM if opt == "adam" else TOL_SGD)
    for out in outs:  # the logged metrics: a tensor each, losses positive, accuracies in [0, 1]
        for key, v in out.items():
            assert torch.is_tensor(v) and bool(torch.isfinite(v.double()).all()), key
            assert key == "arch" or (float(v) > 0 if key.startswith("loss/") else 0 <= float(v) <= 1), key


def tol_for(stage: int, opt: str) -> float:
    """The tolerance of a DeepSpeed run (see the constants above)."""
    return TOL_ZERO12 if stage else TOL_ADAM if opt == "adam" else TOL_SGD


# (strategy, ZeRO stage, layer groups, objective, optimizer): every strategy at every stage, each with one
# group, one engine per layer and uneven groups somewhere. ZeRO 0 (float64 throughout) runs the paper's Adam;
# ZeRO 1/2 run SGD, because their fp32 gradient reduction is rounding noise that Adam with eps 1e-8
# amplifies (test_equivalence.py).
DS_CASES = [("spos", 0, "single", "ce", "adam"), ("greedy", 0, "per_layer", "ce", "adam"),
            ("non_greedy", 0, UNEVEN, "ce", "adam"),
            ("spos", 1, UNEVEN, "ce", "sgd"), ("greedy", 1, "single", "ce", "sgd"),
            ("non_greedy", 1, "per_layer", "ce", "sgd"),
            ("spos", 2, "per_layer", "ce", "sgd"), ("greedy", 2, UNEVEN, "ce", "sgd"),
            ("non_greedy", 2, "single", "ce", "sgd"),
            ("non_greedy", 0, "per_layer", "infonce", "adam"), ("greedy", 2, GROUPS, "infonce", "sgd"),
            ("spos", 1, "single", "infonce", "sgd")]


@pytest.mark.parametrize("strategy,stage,groups,objective,opt", DS_CASES)
def test_deepspeed_engines_equal_oracle(strategy: str, stage: int, groups, objective: str, opt: str) -> None:
    """One DeepSpeed engine per layer group (one group, per layer, uneven), ZeRO 0/1/2."""
    cfg = {"adam": adam, "sgd": sgd}[opt](stage)
    net, backend, _ = train("deepspeed", strategy, cfg, steps=STEPS, layer_groups=groups, objective=objective,
                            net=f64_net(objective))
    assert backend.global_steps == STEPS
    expected = len(groups) if isinstance(groups, list) else 1 if groups == "single" else \
        3 if strategy == "non_greedy" else 4  # per_layer; non-greedy merges layers n-2 and n-1 (shared head)
    assert len(backend.engines) == expected
    assert_matches_oracle(net, oracle_net(strategy, objective, opt), tol_for(stage, opt))


@pytest.mark.parametrize("strategy,stage,opt", [("greedy", 0, "adam"), ("non_greedy", 2, "sgd")])
def test_micro_batches_without_bn_equal_oracle(strategy: str, stage: int, opt: str) -> None:
    plan = {-1: 2, 0: 4, 2: 3}  # 3 does not divide the batch of 4: unequal micro-batches
    cfg = {"adam": adam, "sgd": sgd}[opt](stage)
    net, backend, _ = train("deepspeed", strategy, cfg, steps=STEPS, layer_groups=GROUPS,
                            net=f64_net(no_bn=True), micro_batches=plan)
    assert backend.micro_batches == plan
    assert_matches_oracle(net, oracle_net(strategy, opt=opt, no_bn=True), tol_for(stage, opt))


@pytest.mark.parametrize("strategy,stage,opt", [("spos", 0, "adam"), ("greedy", 2, "sgd"), ("non_greedy", 0, "adam")])
def test_activation_checkpointing_equals_oracle(strategy: str, stage: int, opt: str) -> None:
    """Recomputing a choice in backward must not move its BN statistics a second time."""
    cfg = {"adam": adam, "sgd": sgd}[opt](stage)
    net, backend, _ = train("deepspeed", strategy, cfg, steps=STEPS, layer_groups=GROUPS, net=f64_net(),
                            activation_checkpointing=True)
    assert backend.plan.checkpointed == [0, 1]
    assert_matches_oracle(net, oracle_net(strategy, opt=opt), tol_for(stage, opt))


@pytest.mark.parametrize("strategy", ["greedy", "non_greedy"])
def test_offload_of_inactive_groups_equals_oracle(strategy: str) -> None:
    net, backend, _ = train("deepspeed", strategy, adam(0), steps=STEPS, layer_groups=GROUPS, net=f64_net(),
                            offload_inactive=True)
    assert sum(m["to_host"] for m in backend.offload_moves().values()) > 0
    assert_matches_oracle(net, oracle_net(strategy), TOL_ADAM)


def _unit_of(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:3]) if parts[0] == "layers" else parts[0]


def _optimizer_state(optimizers) -> dict[str, list[dict]]:
    """Per unit (parameter group ``unit``): each parameter's optimizer state, cloned."""
    out: dict[str, list[dict]] = {}
    for opt in optimizers:
        for g in opt.param_groups:
            out[g["unit"]] = [{k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state.get(p, {}).items()}
                              for p in g["params"]]
    return out


@pytest.mark.parametrize("kind,stage", [("reference", 0), ("deepspeed", 0), ("deepspeed", 1), ("deepspeed", 2)])
def test_spos_unsampled_choices_bit_identical(kind: str, stage: int) -> None:
    """Step 1 leaves every choice off its path alone: parameters, BN buffers and Adam state, bit for bit."""
    net, backend, _ = train(kind, "spos", adam(stage), steps=1, net=f64_net())
    x, y = data(2, 1)[1]
    rng = oracle.draws(0, 1)
    arch = [rng.choice(layer.choices) for layer in net.space.layers]
    off_path = {f"layers.{i}.{net.space.choices[k].name}" for i, layer in enumerate(net.space.layers)
                for k in layer.choices if k != arch[i]}
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt_before = _optimizer_state(backend.optimizers)
    get_strategy("spos").step(net, x, y, backend, step_rng(0, 1))
    after, opt_after = net.state_dict(), _optimizer_state(backend.optimizers)
    checked_state = 0
    for k, v in after.items():
        if _unit_of(k) in off_path:
            assert torch.equal(v, before[k]), f"unsampled {k} changed"
    for unit in off_path & opt_before.keys():
        for a, b in zip(opt_before[unit], opt_after[unit]):
            assert a.keys() == b.keys(), unit
            for key in a:
                assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), (unit, key)
                checked_state += bool(key != "step")
    assert checked_state > 0  # some unsampled choice carried Adam moments from step 0
    on_path = {k for k in after if _unit_of(k).startswith("layers.") and _unit_of(k) not in off_path}
    assert any(not torch.equal(after[k], before[k]) for k in on_path)  # the sampled path did train


@pytest.mark.parametrize("kind,stage,strategy", [("reference", 0, "spos"), ("reference", 0, "greedy"),
                                                 ("reference", 0, "non_greedy"), ("deepspeed", 0, "greedy"),
                                                 ("deepspeed", 2, "non_greedy")])
def test_one_step_gradients_equal_oracle(kind: str, stage: int, strategy: str) -> None:
    """Plain SGD with lr 1 and nothing else: (p0 - p1) is the gradient, compared to the oracle's directly,
    so a wrong loss scale (a choice's loss divided by m, a mean instead of a sum) cannot hide in Adam."""
    cfg = ds_config(stage, scheduler=False)
    cfg["optimizer"] = {"type": "SGD", "params": {"lr": 1.0}}
    start = f64_net()
    p0 = {k: v.clone() for k, v in start.named_parameters()}
    net, _, _ = train(kind, strategy, cfg, steps=1, net=start, layer_groups=GROUPS)
    ref = f64_net()
    images, labels = data(1, 1)[0]
    sum(oracle.LOSSES[strategy](ref, images, labels, oracle.draws(0, 0))).backward()
    worst, name = 0.0, ""
    for (k, p1), (_, q) in zip(net.named_parameters(), ref.named_parameters()):
        g = p0[k] - p1.detach()
        expect = torch.zeros_like(g) if q.grad is None else q.grad
        d = float((g - expect).abs().max().detach())
        worst, name = max((worst, name), (d, k))
    big = max(float(q.grad.abs().max()) for q in ref.parameters() if q.grad is not None)
    print(f"noise floor (gradients): {worst:.2e} at {name}; largest gradient {big:.2e}")
    assert big > 1e-2
    tol = TOL_ZERO12 if stage else TOL_SGD
    assert worst <= tol, f"gradient of {name} differs from the oracle's by {worst:.3e}"


def _three_layer_net(tmp_path) -> torch.nn.Module:
    """The demo space cut to 3 layers, whose neighbours differ: layer 1 has a skip choice, layers 0 and 2 not."""
    import yaml

    from lwsl_ds.objectives import get_objective
    from lwsl_ds.space import SuperNet, load_space
    from lwsl_ds.space.spec import preset_path

    spec = yaml.safe_load(preset_path("demo").read_text())
    spec["stages"][1]["layers"] = 1
    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(spec))
    space = load_space(str(path), resolution=16)
    torch.manual_seed(0)
    return SuperNet(space, get_objective("ce", space.num_classes, proj_dim=8)).double()


def test_reference_non_greedy_draws_from_the_next_layer(tmp_path) -> None:
    """In the demo space layers i-1 and i+1 offer the same choices, so a draw from the wrong neighbour would
    pass every other test; here they differ."""
    net = _three_layer_net(tmp_path)
    lists = [tuple(layer.choices) for layer in net.space.layers]
    assert lists[1] != lists[0] == lists[2]
    twin = _three_layer_net(tmp_path)
    train("reference", "non_greedy", sgd(), steps=STEPS, net=net)
    oracle_train(twin, "non_greedy", "sgd")
    assert_matches_oracle(net, twin, TOL_SGD)


@pytest.mark.parametrize("strategy", ["greedy", "non_greedy"])
def test_reference_layer_input_from_input_equals_oracle(strategy: str) -> None:
    """``train.layer_input_init: input`` (Alg. 2 line 6 read literally): x_{i+1} = x_i + mean where shapes match."""
    from lwsl_ds.engines import ReferenceBackend

    net, twin = f64_net(), f64_net()
    strat = get_strategy(strategy, layer_input_init="input")
    backend = ReferenceBackend(net, strat, sgd(), total_steps=10)
    for t, (x, y) in enumerate(data(STEPS, 1)):
        strat.step(net, x, y, backend, step_rng(0, t))
    oracle_train(twin, strategy, "sgd", from_input=True)
    assert_matches_oracle(net, twin, TOL_SGD)
    assert max(state_diffs(twin, oracle_net(strategy, opt="sgd")).values()) > 1e-3  # the option mattered
