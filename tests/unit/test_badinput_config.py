"""Config overrides of the wrong type, generated over every numeric and boolean key of several commands'
schemas, through the same compose path the CLI uses: a ConfigError naming the key, exit status 2."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlpost.cli import main
from rlpost.cli_schemas import register_role_schemas
from rlpost.config import ConfigError, compose
from tests.support.badinput import tally

pytestmark = pytest.mark.badinput
COMMANDS = {"collect": ["collect"], "bench_policy": ["bench", "policy"], "robot_server": ["robot-server"], "keys": ["keys"]}  # fmt: skip
# words YAML or OmegaConf would read as a bool, null or number
RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "none", "nan", "inf", "y", "n"}


def typed_keys(obj: object, prefix: str = "") -> list[tuple[str, type]]:
    """(dotted key, type) of every int, float and bool field under a config dataclass."""
    out = []
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out += typed_keys(value, f"{key}.")
        elif isinstance(value, (bool, int, float)):
            out.append((key, type(value)))
    return out


def candidates() -> list[tuple[str, str, type]]:
    register_role_schemas()
    defaults = {"keys": ["name=x"]}
    return [
        (command, key, t)
        for command in COMMANDS
        for key, t in typed_keys(compose(command, defaults.get(command, [])))
    ]


CANDIDATES = candidates()
wrong_value = st.one_of(
    st.from_regex(r"[a-z][a-z_]{2,7}", fullmatch=True).filter(lambda w: w not in RESERVED),
    st.sampled_from(["[1,2]", "{a: 1}", "'[]'"]),
)


def test_the_candidates_cover_several_commands_and_types():
    assert {c for c, _, _ in CANDIDATES} == set(COMMANDS)
    assert {t for _, _, t in CANDIDATES} == {bool, int, float}
    assert len(CANDIDATES) > 20


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CANDIDATES), wrong_value, st.booleans())
def test_a_value_of_the_wrong_type_is_a_config_error_naming_the_key(candidate, value, through_main):
    command, key, _ = candidate
    overrides = [f"{key}={value}"] + (["name=x"] if command == "keys" else [])
    leaf = key.rsplit(".", 1)[-1]
    if through_main:
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main([*COMMANDS[command], *overrides]) == 2
        assert leaf in err.getvalue() and "bad config" in err.getvalue(), err.getvalue()
    else:
        with pytest.raises(ConfigError) as e:
            compose(command, overrides)
        assert leaf in str(e.value), str(e.value)
    tally("configs: wrong types through the CLI compose path", "refused")
