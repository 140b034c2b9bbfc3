"""Fleet placement: on a Ray cluster (head + 2 workers declaring robot:a / robot:b), each robot's
actor lands on the node that declares its resource.

The cluster runs in a subprocess so it never meets the session-scoped local Ray of the other
integration tests (one process can only be connected to one Ray).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import ray
    from ray.cluster_utils import Cluster
    from actors.config import ActorConfig, ControlConfig
    from rlpost.metrics import LoggerConfig
    from rlpost.policy import VLA, ExpertConfig, PolicyConfig, TinyBackboneConfig, save_checkpoint
    from rlpost.session import PracticeConfig, RayConfig, Session
    from rlpost.sim import SimConfig

    root = sys.argv[1]
    policy = str(save_checkpoint(VLA(PolicyConfig(
        state_dim=6, action_dim=3, horizon=8, num_steps=2, cameras=["top"],
        tiny=TinyBackboneConfig(image_size=32, width=32, grid=4, keypoints=4, vision_depth=1, fusion_depth=1),
        expert=ExpertConfig(width=32, depth=1))), root + "/policy"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes = {
        "a": cluster.add_node(num_cpus=1, resources={"robot:a": 1}).node_id,
        "b": cluster.add_node(num_cpus=1, resources={"robot:b": 1}).node_id,
    }
    cluster.wait_for_nodes()
    cfg = PracticeConfig(
        out=root + "/session", policy_checkpoint=policy, robot_ids=["a", "b"], learn=False,
        actor=ActorConfig(policy=policy, sim=SimConfig(image_size=32, max_steps=12), sim_operator=False,
                          control=ControlConfig(realtime=False, execute=4, lead_steps=2)),
        ray=RayConfig(address=cluster.address, robot_resources=True, actor_num_cpus=0.5),
        status_every_s=0, logger=LoggerConfig(wandb_mode="disabled"),
    )
    session = Session(cfg)
    session.start()
    placed = {
        r.robot_id: ray.get(r.actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))
        for r in session.robots
    }
    head = ray.get_runtime_context().get_node_id()
    reports = ray.get([r.actor.run.remote(1) for r in session.robots], timeout=120)
    session.shutdown()
    cluster.shutdown()
    print("RESULT " + json.dumps({"nodes": nodes, "placed": placed, "head": head,
                                  "episodes": [len(x) for x in reports]}))
    """
)


def test_each_robot_actor_lands_on_the_node_with_its_robot_resource(tmp_path):
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", WANDB_MODE="disabled")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=280, env=env
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"cluster script failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    r = json.loads(lines[-1].removeprefix("RESULT "))
    assert r["placed"] == r["nodes"], f"robots on {r['placed']}, resources declared on {r['nodes']}"
    assert r["head"] not in r["placed"].values()
    assert r["episodes"] == [1, 1]
