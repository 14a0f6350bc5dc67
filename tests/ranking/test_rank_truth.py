"""Ground truth: NAS-Bench-Macro canonical forms, the FLOPs / params floors, CSV/JSON tables."""

from __future__ import annotations

import json

import pytest

from lwsl_ds.config import ConfigError
from lwsl_ds.ranking import (canonical_arch, canonical_key, kendall_tau, load_nasbench_macro, load_truth,
                             load_truth_file, spearman_rho)
from lwsl_ds.space import all_archs, load_space


@pytest.fixture(scope="module")
def nbm_path(shared_data):
    return shared_data / "nas-bench-macro" / "nas-bench-macro_cifar10.json"


def test_canonical_key_examples():
    assert canonical_key("22212202") == "22212220"  # README example
    assert canonical_key("00000000") == "00000000"
    assert canonical_key("10201002") == "10210020"  # a stage's first layer stays; later identities move last
    with pytest.raises(ValueError, match="8 characters"):
        canonical_key("0000")


def test_canonical_forms_count_and_records(nasbench_table):
    canon = {k for k in nasbench_table if canonical_key(k) == k}
    assert len(canon) == 3969
    others = [k for k in nasbench_table if k not in canon]
    assert len(others) == 2592
    for k in others:  # every non-canonical key maps to a canonical one with an identical record
        c = canonical_key(k)
        assert c in canon and canonical_key(c) == c
        assert nasbench_table[k] == nasbench_table[c], k


def test_canonical_arch_uses_the_space_stages():
    sp = load_space("nasbench_macro")
    for a in list(all_archs(sp))[::97]:
        assert canonical_arch(sp, a).key == canonical_key(a.key)
    demo = load_space("demo")  # skips only in the last layer of each stage: every arch is canonical
    assert all(canonical_arch(demo, a) == a for a in all_archs(demo))


def test_flops_and_params_floors_reproduce_the_readme(nbm_path):
    full = load_nasbench_macro(nbm_path, keys="all")
    keys = full.keys()
    acc = full.lookup(keys)
    assert len(keys) == 6561
    assert kendall_tau([full.flops[k] for k in keys], acc) == pytest.approx(0.556, abs=5e-4)
    assert kendall_tau([full.params[k] for k in keys], acc) == pytest.approx(0.218, abs=5e-4)
    assert spearman_rho([full.flops[k] for k in keys], acc) == pytest.approx(0.748, abs=5e-4)
    canon = load_nasbench_macro(nbm_path)  # default: the 3969 distinct trained networks
    ck = canon.keys()
    assert len(ck) == 3969
    assert kendall_tau([canon.flops[k] for k in ck], canon.lookup(ck)) == pytest.approx(0.546, abs=5e-4)
    run1 = load_nasbench_macro(nbm_path, keys="all", metric="run1")
    assert run1.accuracy["22212220"] == pytest.approx(93.28, abs=0.01)


def test_truth_lookup_names_missing_arch(nbm_path):
    canon = load_nasbench_macro(nbm_path)
    with pytest.raises(KeyError, match="22212202"):
        canon.lookup(["22212220", "22212202"])  # the second is a non-canonical duplicate


def test_truth_files_csv_and_json(tmp_path):
    sp = load_space("nasbench_macro")
    csv = tmp_path / "t.csv"
    csv.write_text("arch,accuracy,flops\n00000000,45.0,1e6\nid-mb3k3-id-id-id-id-id-id,50.5,2e6\n")
    t = load_truth_file(csv, sp)
    assert t.accuracy == {"00000000": 45.0, "01000000": 50.5} and t.flops == {"00000000": 1e6, "01000000": 2e6}
    js = tmp_path / "t.json"
    js.write_text(json.dumps({"00000000": 45.0, "11111111": {"mean_acc": 91.0}}))
    assert load_truth(str(js), sp).accuracy == {"00000000": 45.0, "11111111": 91.0}
    lst = tmp_path / "l.json"
    lst.write_text(json.dumps([{"arch": "00000001", "top1": 60}]))
    assert load_truth_file(lst).accuracy == {"00000001": 60.0}


@pytest.mark.parametrize("name,text,match", [
    ("bad.csv", "arch,accuracy\n00000000,abc\n", r"bad.csv:2: accuracy 'abc' is not a number"),
    ("hdr.csv", "name,value\nx,1\n", "needs an arch column"),
    ("dup.csv", "arch,acc\n00000000,1\n00000000,2\n", "appears twice"),
    ("arch.csv", "arch,acc\n0000000,1\n", "expected 8 layers"),
    ("x.json", "{not json", "malformed JSON"),
    ("x.txt", "a", "must be a .csv or .json"),
])
def test_bad_truth_files_name_the_problem(tmp_path, name, text, match):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_truth_file(p, load_space("nasbench_macro"))


def test_nasbench_truth_needs_its_space(tmp_path):
    with pytest.raises(ConfigError, match="nasbench_macro space"):
        load_truth("nasbench_macro", load_space("demo"))
    with pytest.raises(ConfigError, match="not found"):
        load_nasbench_macro(tmp_path / "missing.json")
