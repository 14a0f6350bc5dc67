"""Arch: immutable, hashable, text forms that round-trip, clear parse errors, explicit-RNG sampling."""

from __future__ import annotations

import random

import pytest

from lwsl_ds.config import ConfigError
from lwsl_ds.space import Arch, describe, load_arch, load_space, parse_arch, sample_arch, save_arch


@pytest.fixture(scope="module")
def paper():
    return load_space("paper")


def test_arch_is_immutable_and_hashable(paper):
    a = sample_arch(paper, random.Random(1))
    with pytest.raises(AttributeError):
        a.choices = (0,)  # type: ignore[misc]
    assert {a: 1}[Arch(tuple(a.choices))] == 1
    assert a.replace(0, 1) != a or a[0] == 1


def test_text_forms_round_trip(paper):
    rng = random.Random(0)
    for _ in range(200):
        a = sample_arch(paper, rng)
        assert parse_arch(paper, str(a)) == a
        assert parse_arch(paper, describe(paper, a)) == a
        assert len(str(a)) == paper.num_layers


def test_nasbench_keys_are_archs():
    sp = load_space("nasbench_macro")
    a = parse_arch(sp, "22212220")
    assert a.choices == (2, 2, 2, 1, 2, 2, 2, 0) and describe(sp, a).startswith("mb6k5-mb6k5")


@pytest.mark.parametrize("text,fragment", [
    ("123", "expected 15 layers"),
    ("1" * 16, "expected 15 layers"),
    ("0" + "1" * 14, "'skip' is not allowed in layer 0"),
    ("9" * 15, "choice index 9 does not exist"),
    ("k3e4-" * 14 + "k9e9", "unknown choice 'k9e9'"),
    ("", "empty"),
])
def test_bad_arch_text_is_rejected_clearly(paper, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_arch(paper, text)


def test_sampling_is_uniform_and_valid(paper):
    rng = random.Random(123)
    archs = [sample_arch(paper, rng) for _ in range(3000)]
    assert all(parse_arch(paper, a) == a for a in archs)
    counts = [sum(a[1] == k for a in archs) for k in paper.layers[1].choices]
    assert min(counts) > 3000 / 7 * 0.8 and max(counts) < 3000 / 7 * 1.2
    assert sample_arch(paper, random.Random(5)) == sample_arch(paper, random.Random(5))


def test_arch_yaml_round_trip(paper, tmp_path):
    a = sample_arch(paper, random.Random(2))
    p = save_arch(tmp_path / "best.yaml", paper, a, flops=123)
    sp, b, doc = load_arch(p)
    assert b == a and sp.name == "paper" and doc["flops"] == 123
    p.write_text("space: paper\narch: '123'\n")
    with pytest.raises(ConfigError, match="expected 15 layers"):
        load_arch(p)
