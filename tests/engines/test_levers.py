"""One lever object, one wrapping order, one backend registry (build_backend, Levers, wrap_levers, BACKENDS)."""

from __future__ import annotations

import pytest

from lwsl_ds.config import ConfigError
from lwsl_ds.config.sections.train import Levers, TrainConfig
from lwsl_ds.engines import BACKENDS, ReferenceBackend, backend_class, build_backend
from lwsl_ds.memory import AccountingBackend, CheckpointBackend, MicroBatchBackend, wrap_levers
from lwsl_ds.strategies import get_strategy
from tests.engines.harness import BATCH, ds_config, max_param_diff, tiny_net, train

GROUPS = [[0, 1], [2, 3]]
LEVERS = Levers(micro_batches={0: 2, 2: 4}, activation_checkpointing=[1])


def _chain(backend) -> list[type]:
    """The wrapper types from the outside in, then the innermost backend's type."""
    out = []
    while True:
        out.append(type(backend))
        if not hasattr(backend, "inner"):
            return out
        backend = backend.inner


def test_levers_object_and_keywords_train_the_same() -> None:
    """levers= and the four keywords are one thing: the same wrappers, in the same order, the same weights."""
    a, ba, _ = train("reference", "non_greedy", ds_config(0), layer_groups=GROUPS, levers=LEVERS)
    b, bb, _ = train("reference", "non_greedy", ds_config(0), layer_groups=GROUPS, micro_batches={0: 2, 2: 4},
                     activation_checkpointing=[1])
    assert _chain(ba) == _chain(bb) == [MicroBatchBackend, CheckpointBackend, ReferenceBackend]
    assert ba.plan.checkpointed == [1] and max_param_diff(a, b) == 0.0
    assert max_param_diff(a, tiny_net()) > 0  # the weights did move


def test_accounting_wraps_in_the_training_order() -> None:
    """The accounted step goes through the same wrap_levers as build_backend."""
    acc = wrap_levers(AccountingBackend(GROUPS), tiny_net(), LEVERS, BATCH)
    assert _chain(acc) == [MicroBatchBackend, CheckpointBackend, AccountingBackend]
    assert acc.inner.checkpoint_layers == [2, 3] and acc.micro_batches == {0: 2, 2: 4}


def test_levers_given_twice_are_refused() -> None:
    with pytest.raises(ConfigError, match="either as levers= or as keywords"):
        build_backend("reference", tiny_net(), get_strategy("greedy"), ds_config(0), levers=LEVERS,
                      offload_inactive=True)


def test_backend_registry_names_the_known_backends() -> None:
    assert backend_class("reference") is ReferenceBackend and sorted(BACKENDS) == ["deepspeed", "reference"]
    with pytest.raises(ValueError, match=r"unknown backend 'tpu'; choose from \['deepspeed', 'reference'\]"):
        build_backend("tpu", tiny_net(), get_strategy("greedy"), ds_config(0))
    # one constructor for every registered backend: the monitor names a reference run does not use are accepted
    ref = BACKENDS["reference"](tiny_net(), get_strategy("greedy"), ds_config(0), job_name="x", monitor_dir=None)
    assert ref.groups == [[0, 1, 2, 3]]


@pytest.mark.parametrize("kw,needle", [({"micro_batches": "sometimes"}, "train.micro_batches: 'sometimes'"),
                                       ({"memory_budget_mib": 8.0}, "only used with train.micro_batches: auto"),
                                       ({"micro_batches": "auto", "memory_budget_mib": 0.0}, "must be > 0"),
                                       ({"offload_inactive": [-1]}, "train.offload_inactive: group indices"),
                                       ({"activation_checkpointing": "yes"}, "true, false or a list")])
def test_levers_are_checked_once_on_construction(kw: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Levers(**kw)
    with pytest.raises(ConfigError, match=needle.split(":")[0]):
        TrainConfig(**kw).validate()  # the config section checks through the same object


def test_group_choices_resolve_against_the_groups() -> None:
    levers = Levers(micro_batches="auto", offload_inactive=True, activation_checkpointing=[1])
    assert TrainConfig(micro_batches="auto", offload_inactive=True, activation_checkpointing=[1]).levers == levers
    assert levers.offload_groups(3, "greedy") == [0, 1, 2] and levers.checkpoint_layers(GROUPS) == [2, 3]
    with pytest.raises(ConfigError, match="SPOS"):
        levers.offload_groups(3, "spos")
    with pytest.raises(ConfigError, match=r"groups \[1\] do not exist \(1 layer groups"):
        levers.checkpoint_groups([[0, 1, 2, 3]])
    with pytest.raises(ConfigError, match="planned from the memory accounting first"):
        levers.plan  # noqa: B018
