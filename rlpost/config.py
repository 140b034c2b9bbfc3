"""Hydra wiring: every component's config schema is a dataclass beside it; this module
registers them in Hydra's ConfigStore and composes a command's config into its dataclass.

YAML under configs/ only chooses (``policy=tiny``) and overrides values; the
dataclasses are the truth, so a mistyped key is an error, not a silent default.
Library code never sees Hydra objects: :func:`compose` returns the dataclass.
"""

from __future__ import annotations

from typing import Any, TypeVar

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from rlpost.bench.policy_bench import PolicyBenchConfig
from rlpost.collect import CollectConfig
from rlpost.evaluation import EvalConfig
from rlpost.policy.config import PolicyConfig
from rlpost.pretrain import PretrainConfig
from rlpost.transport.curve import KeysConfig

T = TypeVar("T")

# command config name -> its schema. Schemas are stored under "<name>_schema" at the root,
# never inside a group (a schema in a group would show up as a selectable option).
COMMAND_SCHEMAS: dict[str, type] = {
    "bench_policy": PolicyBenchConfig,
    "collect": CollectConfig,
    "pretrain": PretrainConfig,
    "eval": EvalConfig,
    "keys": KeysConfig,
}
GROUP_SCHEMAS: dict[str, type] = {"policy": PolicyConfig}


class ConfigError(ValueError):
    """A command's config could not be composed (unknown key, wrong type, contradiction)."""


def register() -> None:
    cs = ConfigStore.instance()
    for name, schema in COMMAND_SCHEMAS.items():
        cs.store(name=f"{name}_schema", node=schema)
    for group, schema in GROUP_SCHEMAS.items():
        cs.store(name=f"{group}_schema", node=schema)


def compose(config_name: str, overrides: list[str] | None = None) -> Any:
    """Compose ``configs/<config_name>.yaml`` with overrides into its dataclass.

    Raises:
        ConfigError: an added key (``+x=1``), an unknown key or a value of the wrong type.
    """
    overrides = list(overrides or [])
    added = [o for o in overrides if o.startswith("+")]
    if added:
        # Hydra's "+key=value" silently adds a key even to a structured config.
        raise ConfigError(f"adding keys is not allowed, every option is declared: {added}")
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="configs", version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        obj = OmegaConf.to_object(cfg)
    except Exception as e:  # Hydra and OmegaConf raise many types; all mean a bad config
        # Hydra suggests "+key=..." for an unknown key; that is refused above, so drop the hint.
        msg = "\n".join(
            line for line in str(e).splitlines() if not line.startswith("To append to your config")
        )
        raise ConfigError(f"config {config_name!r} with overrides {overrides}: {msg}") from e
    finally:
        GlobalHydra.instance().clear()
    return obj
