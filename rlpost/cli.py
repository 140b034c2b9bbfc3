"""The `rlpost` command: subcommands, each composing its Hydra config into a dataclass.

    rlpost bench policy policy.horizon=16 batch=8

Overrides after the subcommand are Hydra overrides; a typo is an error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

log = logging.getLogger("rlpost")


def _bench_policy(overrides: list[str]) -> int:
    from rlpost.bench.policy_bench import run_policy_bench
    from rlpost.config import compose
    from rlpost.report import format_table, write_json

    cfg = compose("bench_policy", overrides)
    result = run_policy_bench(cfg)
    setup = result["setup"]
    title = (
        f"rlpost bench policy: {setup['backbone']} backbone, batch {setup['batch']}, H={setup['horizon']}, "
        f"N={setup['num_steps']} Euler steps, {setup['image_size']}px x {len(setup['cameras'])} camera(s), "
        f"{setup['torch_threads']} torch thread(s)"
    )
    print(format_table(result["rows"], ["measure", "median_ms", "p99_ms", "vs_cached", "n"], title))
    print(format_table([result["params"]], title="\nparameters"))
    if cfg.out:
        print(f"\nwrote {write_json(cfg.out, result)}")
    return 0


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
    overrides = [f"checkpoint={o[7:]}" if o.startswith("policy=") else o for o in overrides]
    cfg = compose("eval", overrides)
    r = evaluate_checkpoint(cfg)
    print(
        format_table(
            [r.row()],
            title=f"eval {cfg.checkpoint} on {cfg.task} (seeds {cfg.seed}..{cfg.seed + cfg.episodes - 1})",
        )
    )
    if cfg.out:
        import dataclasses

        print(f"wrote {write_json(cfg.out, dataclasses.asdict(r))}")
    return 0


# (group, name) -> (help, handler). Later issues add practice, pretrain, eval, ...
COMMANDS: dict[tuple[str, ...], tuple[str, Callable[[list[str]], int]]] = {
    ("collect",): ("record scripted demonstrations of a simulated task into an episode store", _collect),
    ("pretrain",): ("imitation-pretrain the whole VLA on a store of demonstrations", _pretrain),
    ("eval",): ("success rate (CI), progress, successes/hour, cycle time of a policy on a task", _eval),
    ("bench", "policy"): ("time prefix-cached vs re-encoded chunk sampling; policy latency", _bench_policy),
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
        p.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
        p.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from rlpost.config import ConfigError

    try:
        return args.handler(args.overrides)
    except ConfigError as e:
        print(f"rlpost: bad config: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
