"""The practice session on Ray: robots, operators, store, labeler, learner and head publishing.

    session = Session(PracticeConfig(...), on_status=print)
    summary = session.run()          # start(), practise until the budget or Ctrl-C, shutdown()

This package is the only core code (besides the CLI) that imports actors/, learner/ and
reward_models/, and the only place ``ray.remote`` is applied. The pieces:

- one Ray actor per robot (:class:`actors.robot_actor.RobotActor`, ``max_concurrency >= 2``
  so ``status()`` and ``offer_weights()`` answer while ``run()`` is busy), or several
  simulated robots per actor process (:class:`RobotGroup`) for CPU efficiency. Each robot
  records every step straight into the session's episode store (multi-writer), with its
  simulated operator (or a person's device) on its operator channel. With
  ``ray.robot_resources`` each robot's actor asks for the custom resource ``robot:<id>``,
  so it lands on the host that declares it (one owner per robot).
- :class:`LearnerService`: the labeler (labels each newly finished episode with the reward
  model) and the learner (k updates per cycle, publishing a head every
  ``learner.publish_every``). It runs in the driver by default: on a 2-core machine a
  second torch process only adds start-up and contention, and the driver has nothing else
  to do. ``ray.learner_actor=true`` (implied by ``ray.learner_gpus > 0``) runs the same
  class as a Ray actor that asks for the GPUs.
- every new head is ``ray.put`` once as a dict of numpy arrays and that one ref is offered
  to every robot actor; robots load it between chunks, and the steps they record carry
  the version.

Session directory (``out``)::

    session.json        session id, runs (start/stop times), config of the latest run
    store/              the episode store: imported demos + practice episodes + labels
    learner/            checkpoints/last, heads/head-<v>.safetensors, features/, metrics.jsonl
    metrics.jsonl       fleet metrics (robot/<id>/..., fleet/...) and wandb/ (offline)
    session.log         this process's log lines
    summary.json        the final summary (robots, learner, throughput, broadcast latency)

``resume=true`` continues a session directory: same id, learner from its checkpoint,
budgets count everything the directory already holds.

The modules, each one concern (everything above is importable from ``rlpost.session``):

- ``config``: the schema of `rlpost practice` (PracticeConfig, RayConfig, BudgetConfig).
- ``inputs``: importing demonstrations into the store, training the reward model.
- ``learner_service``: LearnerService (labeler + learner) and the LearnerTick it returns.
- ``robots``: RobotGroup, the Fleet of robot actors (dispatch, collect, restarts, head offers).
- ``directory``: SessionDirectory (the session.json marker, session.log, summary.json).
- ``session``: the Session driver and its SessionSummary.
"""

from learner.config import LearnerConfig
from reward_models.config import RewardTrainConfig
from rlpost.session.config import BudgetConfig, PracticeConfig, RayConfig
from rlpost.session.inputs import import_episodes, train_reward
from rlpost.session.learner_service import LearnerService, LearnerTick
from rlpost.session.robots import RobotGroup
from rlpost.session.session import Session, SessionError, SessionSummary

__all__ = [
    "BudgetConfig",
    "LearnerConfig",
    "LearnerService",
    "LearnerTick",
    "PracticeConfig",
    "RayConfig",
    "RewardTrainConfig",
    "RobotGroup",
    "Session",
    "SessionError",
    "SessionSummary",
    "import_episodes",
    "train_reward",
]
