"""Named data sets default to $LWSL_DATA_DIR (else ./data); a missing default root says how to point at one."""

from __future__ import annotations

import pytest

from lwsl_ds.config.sections.data import DataConfig, default_root
from lwsl_ds.data.sources import DataError, build_index


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LWSL_DATA_DIR", str(tmp_path))
    assert default_root("cifar10") == f"{tmp_path}/cifar10-jpeg"
    monkeypatch.delenv("LWSL_DATA_DIR")
    assert default_root("cifar10") == "data/cifar10-jpeg"


def test_missing_default_root_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LWSL_DATA_DIR", "no-such-folder")
    with pytest.raises(DataError, match=r"'no-such-folder/cifar10-jpeg' does not exist .*set data.root, or LWSL_DATA_DIR"):
        build_index(DataConfig(source="cifar10"), "train")


def test_shared_cifar10_is_found_through_the_variable(shared_data, monkeypatch):
    monkeypatch.setenv("LWSL_DATA_DIR", str(shared_data))
    assert len(build_index(DataConfig(source="cifar10", max_per_class=2), "train")) == 20


def test_nasbench_table_defaults_to_the_data_dir(shared_data, monkeypatch, tmp_path):
    from lwsl_ds.config.schema import ConfigError
    from lwsl_ds.ranking.truth import load_nasbench_macro

    monkeypatch.setenv("LWSL_DATA_DIR", str(shared_data))
    assert len(load_nasbench_macro().accuracy) == 3969
    monkeypatch.setenv("LWSL_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="set rank.nasbench_path, or LWSL_DATA_DIR"):
        load_nasbench_macro()
