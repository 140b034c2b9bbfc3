"""The `rlpost` command: subcommands, each composing its Hydra config into a dataclass.

    rlpost bench policy policy.horizon=16 batch=8

Overrides after the subcommand are Hydra overrides; a typo is an error.
The handlers of the `rlpost bench` subcommands are in :mod:`rlpost.cli_bench`; this
module holds the command table, the parser and the other handlers.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from rlpost.cli_bench import _bench_actors, _bench_faults, _bench_fleet, _bench_learner, _bench_policy
from rlpost.cli_schemas import register_role_schemas

log = logging.getLogger("rlpost")


def _collect(overrides: list[str]) -> int:
    from rlpost.collect import collect
    from rlpost.config import compose
    from rlpost.report import format_table

    cfg = compose("collect", overrides)
    r = collect(cfg)
    rows = [{"outcome": k, "episodes": v} for k, v in sorted(r.outcomes.items())]
    rows += [{"outcome": f"kind: {k}", "episodes": v} for k, v in sorted(r.kinds.items())]
    print(
        format_table(
            rows,
            title=f"collected {r.episodes} {cfg.task} demos ({r.steps} steps, {r.seconds:.1f} s) into {r.store}",
        )
    )
    return 0


def _pretrain(overrides: list[str]) -> int:
    from rlpost.config import compose
    from rlpost.pretrain import pretrain
    from rlpost.report import format_table

    cfg = compose("pretrain", overrides)
    r = pretrain(cfg)
    row = {
        "steps": r.steps,
        "train_loss": r.train_loss,
        "val_loss": r.val_loss,
        "train_eps": r.train_episodes,
        "val_eps": r.val_episodes,
        "policy": str(r.policy_dir),
    }
    print(format_table([row], title="pretrain"))
    return 0


def _eval(overrides: list[str]) -> int:
    from rlpost.config import compose
    from rlpost.evaluation import evaluate_checkpoint
    from rlpost.report import format_table, write_json

    # `policy=<dir>` names the checkpoint to evaluate (eval never picks a policy preset).
    overrides = _policy_alias(overrides, key="checkpoint")
    cfg = compose("eval", overrides)
    r = evaluate_checkpoint(cfg)
    print(
        format_table(
            [r.row()],
            title=f"eval {cfg.checkpoint}{' + ' + cfg.head if cfg.head else ''}"
            f"{f' best-of-{cfg.best_of} by {cfg.critic}' if cfg.critic else ''} on {cfg.task} "
            f"(seeds {cfg.seed}..{cfg.seed + cfg.episodes - 1})",
        )
    )
    if cfg.out:
        import dataclasses

        print(f"wrote {write_json(cfg.out, dataclasses.asdict(r))}")
    return 0


def _train_critic(overrides: list[str]) -> int:
    from learner.train_critic import train_critic
    from rlpost.config import compose
    from rlpost.report import format_table

    register_role_schemas()
    cfg = compose("train_critic", _policy_alias(overrides, key="checkpoint"))
    path, fit = train_critic(cfg)
    rows = [{"diagnostic": k.removeprefix("critic/"), "value": v} for k, v in fit.metrics().items()]
    print(format_table(rows, title=f"train-critic: {path} (held-out episodes: {fit.heldout_episodes})"))
    return 0


def _critic_check(overrides: list[str]) -> int:
    import dataclasses

    from rlpost.compare.critic_check import critic_check
    from rlpost.config import compose
    from rlpost.report import format_table, write_json

    register_role_schemas()
    cfg = compose("critic_check", _policy_alias(overrides, key="checkpoint"))
    r = critic_check(cfg)
    print(format_table([dataclasses.asdict(r)], title=f"critic-check {cfg.critic} on {cfg.task}"))
    if cfg.out:
        print(f"wrote {write_json(cfg.out, dataclasses.asdict(r))}")
    return 0


def _policy_alias(overrides: list[str], key: str = "policy_checkpoint") -> list[str]:
    # `policy=<dir>` names the VLA checkpoint; "policy" is also a config group, so it is renamed.
    return [f"{key}={o[len('policy=') :]}" if o.startswith("policy=") else o for o in overrides]


def _train_reward(overrides: list[str]) -> int:
    from reward_models.train import train_reward_model
    from rlpost.config import compose
    from rlpost.report import format_table

    register_role_schemas()
    cfg = compose("train_reward", _policy_alias(overrides))
    r = train_reward_model(cfg)
    row = {"version": r.version, "steps": r.steps, "train_eps": r.train_episodes, "val_eps": r.val_episodes}
    print(format_table([row | r.val_metrics], title=f"train-reward: {r.checkpoint}"))
    return 0


def _label(overrides: list[str]) -> int:
    from reward_models.labeler import Labeler
    from rlpost.config import compose
    from rlpost.report import format_table

    register_role_schemas()
    cfg = compose("label", _policy_alias(overrides))
    labeler = Labeler.from_config(cfg)
    r = labeler.label(cfg.episodes or labeler.unlabelled(cfg.task), overwrite=cfg.overwrite)
    row = {
        "label_version": r.label_version,
        "labelled": len(r.labelled),
        "already_labelled": len(r.already_labelled),
        "no_outcome": len(r.no_outcome),
        "auto_marked": len(r.auto_marked),
    }
    print(format_table([row], title=f"label {cfg.store} with {cfg.reward_model}"))
    return 0


def _reward_eval(overrides: list[str]) -> int:
    from reward_models.evaluate import TABLE_COLUMNS, evaluate_reward_model, table_rows
    from rlpost.config import compose
    from rlpost.report import format_table, write_json

    register_role_schemas()
    cfg = compose("reward_eval", _policy_alias(overrides))
    r = evaluate_reward_model(cfg)
    held = "held-out episodes" if r["held_out_only"] else "all episodes"
    print(
        format_table(
            table_rows(r), TABLE_COLUMNS, f"reward-eval {r['label_version']} on {cfg.store} ({held})"
        )
    )
    if cfg.out:
        print(f"wrote {write_json(cfg.out, r)}")
    return 0


def _learn(overrides: list[str]) -> int:
    from learner.offline import run_learn
    from rlpost.config import compose
    from rlpost.report import format_table

    register_role_schemas()
    cfg = compose("learn", _policy_alias(overrides))
    r = run_learn(cfg)
    row = {
        "mode": cfg.learner.mode,
        "updates": r.updates,
        "head_version": r.version,
        "loss": r.loss,
        "ess": r.ess,
        "cache_hit_rate": r.cache_hit_rate,
        "heads": str(r.run_dir / "heads"),
    }
    print(format_table([row], title=f"learn on {cfg.store}"))
    return 0


def _robot_server(overrides: list[str]) -> int:
    from actors.robot_server import run_robot_server
    from rlpost.config import compose

    register_role_schemas()
    cfg = compose("robot_server", overrides)
    run_robot_server(
        cfg, ready=lambda ep: print(f"robot-server {cfg.robot_id} listening on {ep}", flush=True)
    )
    return 0


def _practice(overrides: list[str]) -> int:
    from rlpost.config import compose
    from rlpost.report import format_table
    from rlpost.session import Session

    register_role_schemas()
    cfg = compose("practice", _policy_alias(overrides))
    s = Session(cfg, on_status=lambda text: print(text, flush=True)).run()
    title = (
        f"practice {s.session_id} ({s.stopped_by}): {s.episodes} episodes, {s.steps} steps in {s.wall_s:.0f} s, "
        f"learner step {s.learner_step}, head v{s.head_version}; session in {s.out}"
    )
    print(format_table(s.rows, title=title))
    bms = f"{max(s.broadcast_ms):.1f}" if s.broadcast_ms else "-"
    print(
        f"robot actors up in {s.actors_start_s:.1f} s; {s.steps_per_s:.0f} control steps/s (all robots); "
        f"{s.updates_per_s:.2f} learner updates/s while robots ran; head broadcast max {bms} ms"
    )
    return 0


def _console(overrides: list[str]) -> int:
    import webbrowser

    from rlpost.config import compose
    from rlpost.console import read_console_file

    register_role_schemas()
    cfg = compose("console", overrides)
    try:
        doc = read_console_file(cfg.session)
    except FileNotFoundError as e:
        print(f"rlpost console: {e}", file=sys.stderr)
        return 1
    print(f"console of the session in {cfg.session}: {doc['url']}")
    if cfg.open and not webbrowser.open(doc["url"]):
        print("rlpost console: no web browser could be opened here; open the address above", file=sys.stderr)
    return 0


def _demo(overrides: list[str]) -> int:
    from rlpost.config import compose
    from rlpost.demo import result_table, run_demo

    register_role_schemas()
    quick = "--quick" in overrides or "quick=true" in overrides
    rest = [o for o in overrides if o not in ("--quick", "quick=true", "quick=false")]
    cfg = compose("demo_quick" if quick else "demo", rest)
    r = run_demo(cfg, on_status=lambda text: print(text, flush=True))
    print(result_table(cfg, r))
    print(f"wrote {cfg.out}/demo_result.json")
    return 0


def _compare(overrides: list[str]) -> int:
    from rlpost.compare import compare
    from rlpost.config import compose

    register_role_schemas()
    quick = "--quick" in overrides or "quick=true" in overrides
    rest = [o for o in overrides if o not in ("--quick", "quick=true", "quick=false")]
    cfg = compose("compare_quick" if quick else "compare", _policy_alias(rest, "policy_checkpoint"))
    text, _ = compare(cfg)
    print(text)
    print(f"wrote {cfg.out}/compare.json, {cfg.out}/curves.png, {cfg.out}/tables.txt")
    return 0


def _compare_merge(args: list[str]) -> int:
    from rlpost.compare import merge

    return _join_comparisons(
        args, merge, "compare-merge", "comparisons run on the same checkpoint, seeds and budgets"
    )


def _compare_pool(args: list[str]) -> int:
    from rlpost.compare import pool

    return _join_comparisons(
        args, pool, "compare-pool", "replications: the same comparison run on other practice/evaluation seeds"
    )


def _compare_page(args: list[str]) -> int:
    from rlpost.compare.page import write_page

    if len(args) != 1 or "=" in args[0]:
        print(
            "usage: rlpost compare-page DIR (DIR holds compare.json and study.json; writes DIR/README.md)",
            file=sys.stderr,
        )
        return 2
    try:
        print(f"wrote {write_page(args[0])}")
    except (FileNotFoundError, ValueError) as e:
        print(f"rlpost compare-page: {e}", file=sys.stderr)
        return 2
    return 0


def _compare_pair(args: list[str]) -> int:
    from rlpost.compare import pair

    out, inputs = _out_and_inputs(args)
    if len(out) != 1 or len(inputs) != 2 or any("=" in a for a in inputs):
        print(
            "usage: rlpost compare-pair out=DIR BASE/compare.json OTHER/compare.json "
            "(each method of OTHER against the same method of BASE, seed by seed)",
            file=sys.stderr,
        )
        return 2
    try:
        text, _ = pair(inputs[0], inputs[1], out[0])
    except (FileNotFoundError, ValueError) as e:
        print(f"rlpost {e}", file=sys.stderr)
        return 1
    print(text)
    print(f"wrote {out[0]}/pair.json, {out[0]}/pair.txt")
    return 0


def _out_and_inputs(args: list[str]) -> tuple[list[str], list[str]]:
    """(the values of ``out=`` arguments, every other argument) of a command over comparisons."""
    out = [a.split("=", 1)[1] for a in args if a.startswith("out=")]
    return out, [a for a in args if not a.startswith("out=")]


def _join_comparisons(args: list[str], join: Callable[..., tuple[str, dict]], verb: str, what: str) -> int:
    out, inputs = _out_and_inputs(args)
    if len(out) != 1 or len(inputs) < 2 or any("=" in a for a in inputs):
        print(f"usage: rlpost {verb} out=DIR A/compare.json B/compare.json [...] ({what})", file=sys.stderr)
        return 2
    try:
        text, result = join(inputs, out[0])
    except (FileNotFoundError, ValueError) as e:
        print(f"rlpost {e}", file=sys.stderr)
        return 1
    print(text)
    for m, where in result["config"].get("left_out", {}).items():
        print(f"left out (not in every replication): {m}, only in {', '.join(where)}")
    print(f"wrote {out[0]}/compare.json, {out[0]}/curves.png, {out[0]}/tables.txt")
    return 0


def _keys(overrides: list[str]) -> int:
    from rlpost.config import compose
    from rlpost.transport.curve import write_key_pair

    cfg = compose("keys", overrides)
    try:
        public, secret = write_key_pair(cfg.out, cfg.name, cfg.force)
    except (FileExistsError, ValueError) as e:
        print(f"rlpost keys: {e}", file=sys.stderr)
        return 1
    print(
        f"wrote {public} (public: give it to the other side of the link)\n"
        f"  and {secret} (key pair, mode 0600: keep it on this machine)\n\n"
        f"A listener (robot-server, an actor's operator channel) uses its own key pair and a\n"
        f"directory holding the public .key files of the clients it admits, e.g.\n"
        f"  rlpost robot-server bridge.security=curve bridge.curve.server_secret_key={secret} "
        f"bridge.curve.authorized_keys=<dir of client .key files>\n"
        f"A client (an actor with robot=zmq, a teleop device) uses its own key pair and the\n"
        f"listener's public key, e.g.\n"
        f"  ... bridge.security=curve bridge.curve.client_secret_key={secret} "
        f"bridge.curve.server_public_key=<the listener's .key>\n"
        f"  rlpost teleop --endpoint tcp://HOST:PORT --robot-id ID --client-key {secret} "
        f"--server-key <the channel's .key>"
    )
    return 0


def _teleop(argv: list[str]) -> int:
    from actors.devices.keyboard import main as keyboard_main

    return keyboard_main(argv)


# (group, name) -> (help, handler). Later issues add practice, pretrain, eval, ...
COMMANDS: dict[tuple[str, ...], tuple[str, Callable[[list[str]], int]]] = {
    ("collect",): ("record scripted demonstrations of a simulated task into an episode store", _collect),
    ("pretrain",): ("imitation-pretrain the whole VLA on a store of demonstrations", _pretrain),
    ("eval",): ("success rate (CI), progress, successes/hour, cycle time of a policy on a task", _eval),
    ("train-critic",): (
        "fit a chunk critic (ensemble, TD over chunks) for a policy on episode stores; diagnostics",
        _train_critic,
    ),
    ("critic-check",): (
        "replay simulated states: does a chunk critic rank the head's chunks as their Monte Carlo outcomes do",
        _critic_check,
    ),
    ("train-reward",): (
        "train the success + progress reward model on cached backbone features",
        _train_reward,
    ),
    ("label",): ("write versioned per-step reward labels into an episode store", _label),
    ("reward-eval",): (
        "reward model VOC, success AUROC/F1, calibration, final progress by outcome",
        _reward_eval,
    ),
    ("practice",): (
        "practice session on Ray: robots + operators, labeler, learner, head publishing (resume=true)",
        _practice,
    ),
    ("console",): (
        "print (open=true: open) the address and token of a running session's operator console",
        _console,
    ),
    ("demo",): (
        "the whole loop on this machine: collect, pretrain, eval, practice, eval again (--quick: smoke run)",
        _demo,
    ),
    ("compare",): (
        "RL vs curated imitation from one checkpoint: every method, equal robot time, paired seeds (--quick)",
        _compare,
    ),
    ("compare-merge",): (
        "one table from comparisons run apart on the same checkpoint, seeds and budgets (out=DIR A B ...)",
        _compare_merge,
    ),
    ("compare-pool",): (
        "pool replications of one comparison run on other seeds into one table (out=DIR A B ...)",
        _compare_pool,
    ),
    ("compare-page",): (
        "render a study page (DIR/README.md) from the comparison committed there (DIR/compare.json, DIR/study.json)",
        _compare_page,
    ),
    ("compare-pair",): (
        "a setting's effect on each method: the same method of two comparisons, seed by seed (out=DIR BASE OTHER)",
        _compare_pair,
    ),
    ("learn",): (
        "train the action head offline on a store (learner.mode: awfm, adv_conditioned, curated, bc_all, "
        "takeovers, steer, steer_distill, fpo)",
        _learn,
    ),
    ("robot-server",): ("serve a robot driver over zmq for a robot actor", _robot_server),
    ("keys",): ("write a CURVE key pair for authenticated zmq links (out=keys name=robot-1)", _keys),
    ("teleop",): ("keyboard teleop of a robot's operator channel (--endpoint, --robot-id)", _teleop),
    ("bench", "actors"): (
        "control-loop period jitter at the robot rate and zmq bridge round trip",
        _bench_actors,
    ),
    ("bench", "learner"): (
        "head updates/s with the feature cache vs re-running the backbone",
        _bench_learner,
    ),
    ("bench", "policy"): ("time prefix-cached vs re-encoded chunk sampling; policy latency", _bench_policy),
    ("bench", "fleet"): (
        "robots on Ray: start-up, steps/s, on-time ticks for 1..16 robots; publish-to-acting latency, head bytes",
        _bench_fleet,
    ),
    ("bench", "faults"): (
        "inject each fault (kills, full disk, resume) N times; steps recorded vs stored, recovery time",
        _bench_faults,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlpost",
        description="Online RL post-training of flow-matching VLA robot policies.",
        epilog="Arguments after a subcommand are Hydra overrides, e.g. `rlpost bench policy batch=8`.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for path, (help_text, handler) in COMMANDS.items():
        if len(path) == 1:
            p = sub.add_parser(path[0], help=help_text)
        else:
            if path[0] not in groups:
                g = sub.add_parser(path[0], help=f"{path[0]} subcommands")
                groups[path[0]] = g.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            p = groups[path[0]].add_parser(path[1], help=help_text)
        if path == ("teleop",):  # takes its own --flags
            p.add_argument("overrides", nargs=argparse.REMAINDER, help="--endpoint ... --robot-id ...")
        else:
            p.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
        if path in (("demo",), ("compare",)):
            p.add_argument("--quick", action="store_true", help="a small run with tiny budgets")
        p.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from rlpost.config import ConfigError
    from rlpost.data.store_error import StoreError
    from rlpost.policy.checkpoint import CheckpointError

    try:
        return args.handler(args.overrides + (["--quick"] if getattr(args, "quick", False) else []))
    except ConfigError as e:
        print(f"rlpost: bad config: {e}", file=sys.stderr)
        return 2
    except (CheckpointError, StoreError) as e:  # a user's input (a checkpoint, a store), not a bug
        print(f"rlpost {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
