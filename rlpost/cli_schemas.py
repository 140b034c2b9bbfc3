"""The command schemas that live in the role packages, registered for the CLI (wiring: it imports them all)."""

from __future__ import annotations


def register_role_schemas() -> None:
    """Add the role packages' command schemas (learn, benches, robot-server, reward model, practice,
    demo, compare, console) to :data:`rlpost.config.COMMAND_SCHEMAS`; idempotent."""
    # rlpost/config.py is core and must not import the role packages (test_architecture), and
    # the session/demo schemas nest their configs: the wiring module registers all of them.
    from actors.bench import ActorsBenchConfig
    from actors.config import RobotServerConfig
    from learner.bench import LearnerBenchConfig
    from learner.offline import LearnConfig
    from learner.train_critic import TrainCriticConfig
    from reward_models.config import LabelConfig, RewardEvalConfig, RewardTrainConfig
    from rlpost.bench.fleet_bench import FleetBenchConfig
    from rlpost.compare import CompareConfig
    from rlpost.compare.critic_check import CriticCheckConfig
    from rlpost.config import COMMAND_SCHEMAS
    from rlpost.console import ConsoleAttachConfig
    from rlpost.demo import DemoConfig
    from rlpost.faults import FaultsConfig
    from rlpost.session import PracticeConfig

    COMMAND_SCHEMAS.update(
        {
            "learn": LearnConfig,
            "train_critic": TrainCriticConfig,
            "bench_learner": LearnerBenchConfig,
            "bench_actors": ActorsBenchConfig,
            "bench_faults": FaultsConfig,
            "bench_fleet": FleetBenchConfig,
            "robot_server": RobotServerConfig,
            "train_reward": RewardTrainConfig,
            "label": LabelConfig,
            "reward_eval": RewardEvalConfig,
            "practice": PracticeConfig,
            "demo": DemoConfig,
            "demo_quick": DemoConfig,
            "compare": CompareConfig,
            "critic_check": CriticCheckConfig,
            "compare_quick": CompareConfig,
            "console": ConsoleAttachConfig,
        }
    )
