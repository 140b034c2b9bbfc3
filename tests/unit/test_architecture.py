"""The house is the architecture: the dependency rule of DESIGN.md, checked by parsing imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("rlpost", "actors", "learner", "reward_models")
# Only these modules may import actors/, learner/ and reward_models/ and wire them together.
# The research harness (rlpost/compare) runs learners and labelers the way the session does.
# The fault bench (rlpost bench faults) wires real sessions, runners and learners the same way.
WIRING = {
    # the session package (rlpost.session): its config, inputs, learner, robots and driver
    "rlpost/session/__init__.py",
    "rlpost/session/config.py",
    "rlpost/session/inputs.py",
    "rlpost/session/learner_service.py",
    "rlpost/session/robots.py",
    "rlpost/session/session.py",
    "rlpost/session_console.py",  # the session's side of the operator console (polls actors, sends commands)
    "rlpost/cli.py",
    "rlpost/cli_bench.py",  # the `rlpost bench` handlers of the CLI
    "rlpost/cli_schemas.py",  # the role packages' command schemas, registered for the CLI
    "rlpost/compare/config.py",
    "rlpost/compare/runner.py",
    "rlpost/faults.py",
    # the fault scenarios (rlpost.fault_scenarios), one module per fault family
    "rlpost/fault_scenarios/__init__.py",
    "rlpost/fault_scenarios/common.py",
    "rlpost/fault_scenarios/harness.py",
    "rlpost/fault_scenarios/learner_faults.py",
    "rlpost/fault_scenarios/robot_server_faults.py",
    "rlpost/fault_scenarios/session_faults.py",
    "rlpost/fault_scenarios/store_faults.py",
    "rlpost/bench/fleet_bench.py",  # rlpost bench fleet: real sessions of robot actors, timed
}
# A robot-side process must not pay for torch just to speak the schema.
TORCH_FREE = {"rlpost/schema.py", "rlpost/interfaces.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_actors_learner_and_reward_models_import_only_rlpost_core_never_each_other():
    bad = []
    for pkg in ("actors", "learner", "reward_models"):
        others = set(PACKAGES) - {pkg, "rlpost"}
        for f in _sources(pkg):
            hit = _imports(f) & others
            if hit:
                bad.append(f"{f.relative_to(ROOT)} imports {sorted(hit)}")
    assert not bad, "forbidden imports:\n" + "\n".join(bad)


def test_only_session_and_cli_in_rlpost_see_actors_learner_and_reward_models():
    bad = []
    for f in _sources("rlpost"):
        rel = str(f.relative_to(ROOT))
        hit = _imports(f) & {"actors", "learner", "reward_models"}
        if hit and rel not in WIRING:
            bad.append(f"{rel} imports {sorted(hit)}")
    assert not bad, "core modules must not import the role packages:\n" + "\n".join(bad)


def test_schema_and_interfaces_do_not_need_torch():
    for rel in TORCH_FREE:
        assert "torch" not in _imports(ROOT / rel), rel


def test_no_pickle_anywhere_in_the_packages():
    bad = [
        str(f.relative_to(ROOT))
        for pkg in PACKAGES
        for f in _sources(pkg)
        if {"pickle", "cloudpickle"} & _imports(f)
    ]
    assert not bad, f"pickle is not allowed on a socket or in the store: {bad}"


def test_tests_share_helpers_through_tests_support_never_through_each_other():
    bad = []
    for f in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(f.read_text(), filename=str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests."):
                if not node.module.startswith("tests.support"):
                    bad.append(f"{f.relative_to(ROOT)} imports {node.module}")
    assert not bad, "test helpers belong in tests/support/:\n" + "\n".join(bad)
