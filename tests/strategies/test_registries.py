"""The registries (plain dicts, name -> class / preset): every name builds its object, unknown names are one line."""

from __future__ import annotations

import pytest

from lwsl_ds.config import ConfigError
from lwsl_ds.objectives import OBJECTIVES, CrossEntropy, InfoNCE, get_objective
from lwsl_ds.space import PRESETS, load_space
from lwsl_ds.strategies import STRATEGIES, Greedy, NonGreedy, SPOS, get_strategy


def test_every_registered_name_builds_its_object():
    assert {n: type(get_strategy(n)) for n in STRATEGIES} == {"spos": SPOS, "greedy": Greedy, "non_greedy": NonGreedy}
    assert get_strategy("greedy", layer_input_init="input").layer_input_init == "input"
    ce = get_objective("ce", 7, label_smoothing=0.1, proj_dim=64)  # settings of the other objective are ignored
    assert ce == CrossEntropy(num_classes=7, label_smoothing=0.1)
    assert get_objective("infonce", 7, proj_dim=64, mlp=True) == InfoNCE(proj_dim=64, mlp=True)
    assert set(OBJECTIVES) == {"ce", "infonce"}
    assert {n: load_space(n).name for n in PRESETS} == {n: n for n in PRESETS}


def test_unknown_names_are_one_line_listing_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown strategy 'sposs'; choose one of \['spos', 'greedy', 'non_greedy'\]"):
        get_strategy("sposs")
    with pytest.raises(ValueError, match=r"unknown objective 'mse'; choose one of \['ce', 'infonce'\]"):
        get_objective("mse", 10)
    with pytest.raises(ConfigError, match=r"unknown search space 'papr'; presets: \['paper', 'nasbench_macro', 'demo'\]"):
        load_space("papr")
