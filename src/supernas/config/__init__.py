"""Typed configs: one schema (dataclasses) per command, read from YAML with `key=value` overrides.

    from supernas.config import SupernetConfig, load_config
    cfg = load_config(SupernetConfig, "configs/attentivenas_cifar10.yaml", ["train.epochs=10"])
    cfg.train.lr, cfg.data.path
"""
from ..utils.settings import describe
from .loading import dump_config, load_config, parse_override, read_yaml
from .schema import SCHEMAS, FinetuneConfig, FpnasConfig, RetrainConfig, SupernetConfig, run_kind

__all__ = ["FinetuneConfig", "FpnasConfig", "RetrainConfig", "SCHEMAS", "SupernetConfig", "describe", "dump_config",
           "load_config", "parse_override", "read_yaml", "run_kind"]
