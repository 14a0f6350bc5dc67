"""The honest split: the search scores on a deterministic held-out part of the train split that super-net
training never sees; retraining reports on the val split."""

from __future__ import annotations

import pytest

from lwsl_ds.config import ConfigError, from_dict
from lwsl_ds.config.sections.data import DataConfig
from lwsl_ds.data.sources import build_index


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from lwsl_ds.data.demo_dataset import generate

    return generate(tmp_path_factory.mktemp("data"), train_per_class=10, val_per_class=3, size=16)


def _names(cfg, split):
    return build_index(cfg, split).names


def test_holdout_is_deterministic_disjoint_and_sized_by_the_config(folder):
    cfg = DataConfig(source="folder", root=str(folder))  # default: 10% of each class
    train, fit, held = _names(cfg, "train"), _names(cfg, "fit"), _names(cfg, "holdout")
    assert len(held) == 10 and len(fit) == 90 and not set(fit) & set(held) and set(fit) | set(held) == set(train)
    assert held == _names(cfg, "holdout")  # same every time
    assert not set(held) & set(_names(cfg, "val"))
    three = DataConfig(source="folder", root=str(folder), holdout=3)  # a count per class
    assert len(_names(three, "holdout")) == 30 and len(_names(three, "fit")) == 70
    # max_per_class takes the first images of what is left, so a limited run keeps its training images
    lim = DataConfig(source="folder", root=str(folder), holdout=0.5, max_per_class=4)
    assert _names(lim, "fit") == _names(DataConfig(source="folder", root=str(folder), max_per_class=4), "train")
    assert len(_names(DataConfig(source="folder", root=str(folder), val_max_per_class=2), "holdout")) == 10


def test_scoring_split_follows_the_holdout_and_bad_sizes_are_refused(folder):
    from types import SimpleNamespace

    from lwsl_ds.search.scoring import scoring_split, scoring_split_text

    on = SimpleNamespace(data=DataConfig(source="folder", root=str(folder)))
    off = SimpleNamespace(data=DataConfig(source="folder", root=str(folder), holdout=0))
    assert scoring_split(on) == "holdout" and "never trained on" in scoring_split_text(on, 10)
    assert scoring_split(off) == "val" and "retraining reports on the same split" in scoring_split_text(off)
    with pytest.raises(ConfigError, match="data.holdout"):
        from_dict(DataConfig, {"source": "folder", "root": "x", "holdout": 2.5}, "data")
