"""The `rlpost bench` subcommands: each composes its config, runs one bench and prints its table.

    rlpost bench policy policy.horizon=16 batch=8
    rlpost bench fleet            # robots on Ray: start-up, steps/s, publish-to-acting latency

Split from rlpost.cli (which lists them in its command table) so that file keeps the
commands of the pipeline; the benches themselves live beside what they measure.
"""

from __future__ import annotations


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
    best = [r for r in result["rows"] if str(r["measure"]).startswith("best-of-")]
    plain = [r for r in result["rows"] if r not in best]
    print(format_table(plain, ["measure", "median_ms", "p99_ms", "vs_cached", "n"], title))
    if best:
        cols = [
            "measure",
            "median_ms",
            "p99_ms",
            *[k for k in best[0] if k.startswith("vs_")],
            "budget_ms",
            "within_budget",
            "n",
        ]
        budget = f"{cfg.execute} actions at {cfg.control_hz:g} Hz"
        print(format_table(best, cols, f"\nbest-of-N acting (encode + N chunks + critic); budget: {budget}"))
    print(format_table([result["params"]], title="\nparameters"))
    if cfg.out:
        print(f"\nwrote {write_json(cfg.out, result)}")
    return 0


def _bench_learner(overrides: list[str]) -> int:
    from learner.bench import run_learner_bench
    from rlpost.cli_schemas import register_role_schemas
    from rlpost.config import compose
    from rlpost.report import format_table, write_json

    register_role_schemas()
    cfg = compose("bench_learner", overrides)
    result = run_learner_bench(cfg)
    s = result["setup"]
    title = (
        f"rlpost bench learner: head updates/s, feature cache vs frozen backbone re-run each update "
        f"(batch {s['batch']}, {s['image_size']} px, H={s['horizon']}, {s['threads']} torch thread(s))"
    )
    print(format_table(result["rows"], title=title))
    if cfg.out:
        print(f"wrote {write_json(cfg.out, result)}")
    return 0


def _bench_actors(overrides: list[str]) -> int:
    from actors.bench import bench_bridge, bench_control_loop
    from rlpost.cli_schemas import register_role_schemas
    from rlpost.config import compose
    from rlpost.report import format_table, write_json

    register_role_schemas()
    cfg = compose("bench_actors", overrides)
    loop = bench_control_loop(hz=cfg.hz, seconds=cfg.seconds)
    bridge = bench_bridge(image=cfg.image, n=cfg.round_trips)
    rows = [
        {"measure": f"control period at {cfg.hz:g} Hz (realtime)", **loop["period_ms"]},
        {"measure": "control jitter |period - target|", **loop["jitter_ms"]},
        {"measure": f"bridge round trip, {cfg.image}x{cfg.image} image", **bridge["rtt_ms"]},
    ]
    print(format_table(rows, ["measure", "p50", "p99", "max"], "rlpost bench actors (ms)"))
    print(f"control overruns: {loop['overruns']} of {loop['steps']} steps")
    if cfg.out:
        print(f"wrote {write_json(cfg.out, {'control_loop': loop, 'bridge': bridge})}")
    return 0


def _bench_fleet(overrides: list[str]) -> int:
    import dataclasses

    from rlpost.bench.fleet_bench import run_fleet_bench
    from rlpost.cli_schemas import register_role_schemas
    from rlpost.config import compose
    from rlpost.report import format_table, write_json

    register_role_schemas()
    cfg = compose("bench_fleet", overrides)
    # The bytes table also sizes the light policy `rlpost pretrain` trains by default.
    extra = {"pretrain (configs/pretrain.yaml)": compose("pretrain").policy}
    r = run_fleet_bench(cfg, extra, on_progress=lambda line: print(line, flush=True))
    s = r.setup
    print(
        format_table(
            r.fleet,
            title=(
                f"\nrlpost bench fleet: {s['task']} sims at {s['hz']:g} Hz in real time, {s['image_size']} px, "
                f"{s['cpu_cores']} CPU cores; on_time: step interval <= {1 + s['late_tolerance']:g} periods"
            ),
        )
    )
    print(
        format_table(
            r.weights,
            title=(
                f"\nweights: publish -> acked by every actor (ack) -> every robot acting on it; a robot "
                f"loads a head before its next chunk, every {s['execute']} steps ({s['chunk_period_ms']:.0f} ms)"
            ),
        )
    )
    print(format_table(r.bytes, title="\nbytes a publish ships (the head) vs the whole model"))
    if cfg.out:
        print(f"wrote {write_json(cfg.out, dataclasses.asdict(r))}")
    return 0


def _bench_faults(overrides: list[str]) -> int:
    from rlpost.cli_schemas import register_role_schemas
    from rlpost.config import compose
    from rlpost.faults import run_faults
    from rlpost.report import format_table, write_json

    register_role_schemas()
    cfg = compose("bench_faults", overrides)

    def progress(r) -> None:  # one line per injection as it finishes
        print(
            f"{r.fault}: {'survived' if r.survived else 'FAILED'} in {r.recovery_s:.2f} s: {r.detail}",
            flush=True,
        )

    result = run_faults(cfg, on_run=progress)
    title = (
        f"rlpost bench faults: each fault injected {cfg.times}x with real processes (SIGKILL, RLIMIT_FSIZE)"
    )
    print(format_table(result["rows"], title=title))
    print(f"wrote {write_json(f'{cfg.out}/results.json', result)}")
    return 0 if all(r["survived"] == r["injected"] for r in result["rows"]) else 1
