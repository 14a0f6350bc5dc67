"""Typed experiment configuration: schema, safe YAML loading, overrides."""

from .schema import ConfigError, from_dict, spec, to_dict
from .loader import apply_overrides, load_experiment, load_yaml, parse_experiment

__all__ = ["ConfigError", "from_dict", "spec", "to_dict", "apply_overrides", "load_experiment",
           "load_yaml", "parse_experiment"]
