"""`rlpost bench policy`: what the prefix cache buys at sampling time, and the policy's latency.

Three ways to sample one chunk of H actions with N Euler steps, timed in one run:
  cached   encode once, project the prefix to cross-attention K/V once (rlpost's way)
  kv_each  encode once, re-project the prefix K/V at every step
  naive    run the whole backbone again at every step (a VLA without a prefix cache)

and best-of-N acting (rlpost/policy/best_of_n.py) at each N in ``best_of``: encode once, sample N
chunks from the shared prefix, score them with a chunk critic, against the control budget of one
chunk (``execute`` actions at ``control_hz``: the time a robot has before it needs the next chunk).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from rlpost.policy import VLA, ObsBatch, PolicyConfig

log = logging.getLogger(__name__)


@dataclass
class PolicyBenchConfig:
    """Settings of `rlpost bench policy`."""

    policy: PolicyConfig = field(default_factory=lambda: PolicyConfig(state_dim=8, action_dim=7))
    batch: int = 1
    repeats: int = 30  # timed calls per measurement (after warm-up)
    warmup: int = 3
    image_size: int = 64  # camera images fed to the policy (h = w)
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    out: str = ""  # write the results as JSON here when set
    best_of: list[int] = field(default_factory=lambda: [1, 4, 8, 16])  # N of best-of-N acting
    critic_heads: int = 5  # the chunk critic best-of-N scores with (random weights: latency only)
    critic_width: int = 256
    execute: int = 50  # actions a robot executes per chunk: with control_hz, the budget of one chunk
    control_hz: float = 50.0


def _time(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _stats(name: str, secs: list[float]) -> dict[str, object]:
    ms = sorted(1e3 * s for s in secs)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return {"measure": name, "median_ms": statistics.median(ms), "p99_ms": p99, "n": len(ms)}


def run_policy_bench(cfg: PolicyBenchConfig) -> dict[str, object]:
    """Time encode and the three sampling modes; returns rows for the table and the params."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    vla = VLA(cfg.policy).eval()
    vla.backbone.freeze()
    rng = np.random.default_rng(0)
    b, s = cfg.batch, cfg.image_size
    batch = ObsBatch(
        images={c: rng.integers(0, 255, (b, s, s, 3), dtype=np.uint8) for c in cfg.policy.cameras},
        state=rng.normal(size=(b, cfg.policy.state_dim)).astype(np.float32),
        instructions=["put the red block in the ring"] * b,
    )
    state = torch.from_numpy(batch.state)
    steps = cfg.policy.num_steps

    def cached() -> torch.Tensor:
        return vla.sample(vla.encode(batch), state)

    def kv_each() -> torch.Tensor:
        return vla.sample(vla.encode(batch), state, reuse_prefix=False)

    def naive() -> torch.Tensor:
        # The backbone runs inside every integration step, as in a model without a prefix cache.
        noise = torch.randn(b, cfg.policy.horizon, cfg.policy.action_dim)
        x, dt = noise, 1.0 / steps
        s_norm = vla.state_norm.normalize(vla.select_state(state))
        for i in range(steps):
            prefix = vla.encode(batch)
            tau = torch.full((b,), 1.0 - i * dt)
            x = x - dt * vla.expert(prefix, s_norm, x, tau)
        return vla.action_norm.unnormalize(x)

    rows = []
    with torch.no_grad():
        rows.append(_stats("encode", _time(lambda: vla.encode(batch), cfg.repeats, cfg.warmup)))
        prefix = vla.encode(batch)
        rows.append(
            _stats("sample (prefix given)", _time(lambda: vla.sample(prefix, state), cfg.repeats, cfg.warmup))
        )
        # the three chunk modes interleaved, so machine load hits them alike
        timings: dict[str, list[float]] = {"chunk: cached": [], "chunk: kv_each": [], "chunk: naive": []}
        fns = {"chunk: cached": cached, "chunk: kv_each": kv_each, "chunk: naive": naive}
        for fn in fns.values():
            for _ in range(cfg.warmup):
                fn()
        for _ in range(cfg.repeats):
            for name, fn in fns.items():
                timings[name] += _time(fn, 1, 0)
        base = statistics.median(timings["chunk: cached"])
        for name, secs in timings.items():
            row = _stats(name, secs)
            row["vs_cached"] = statistics.median(secs) / base
            rows.append(row)
        rows += best_of_n_rows(vla, batch, cfg)
    params = {
        "backbone": sum(p.numel() for p in vla.backbone.parameters()),
        "action_expert": sum(p.numel() for p in vla.expert.parameters()),
    }
    return {
        "rows": rows,
        "params": params,
        "setup": {
            "backbone": cfg.policy.backbone,
            "batch": b,
            "horizon": cfg.policy.horizon,
            "num_steps": steps,
            "image_size": s,
            "cameras": list(cfg.policy.cameras),
            "torch_threads": torch.get_num_threads(),
        },
    }


def best_of_n_rows(vla: VLA, batch: ObsBatch, cfg: PolicyBenchConfig) -> list[dict[str, object]]:
    """Latency of best-of-N acting at each N (interleaved), its ratio to N = 1, and the budget."""
    from rlpost.policy.best_of_n import BestOfN
    from rlpost.policy.chunk_critic import ChunkCritic, ChunkQ, CriticSpec

    spec = CriticSpec(
        prefix_width=vla.backbone.width,
        state_dim=vla.cfg.policy_state_dim,
        action_dim=vla.cfg.action_dim,
        chunk=min(4, vla.cfg.horizon),
        heads=cfg.critic_heads,
        width=cfg.critic_width,
    )
    critic = ChunkCritic(spec, ChunkQ(spec).eval())
    picks = {n: BestOfN(vla, critic, n) for n in cfg.best_of}
    timings: dict[int, list[float]] = {n: [] for n in cfg.best_of}
    for pick in picks.values():
        for _ in range(cfg.warmup):
            pick.choose(batch)
    for _ in range(cfg.repeats):
        for n, pick in picks.items():
            timings[n] += _time(lambda p=pick: p.choose(batch), 1, 0)
    budget_ms = 1e3 * cfg.execute / cfg.control_hz
    base = statistics.median(timings[min(cfg.best_of)])
    rows = []
    for n, secs in timings.items():
        row = _stats(f"best-of-{n} (critic {spec.heads}x{spec.width})", secs)
        row["vs_best_of_1" if min(cfg.best_of) == 1 else f"vs_best_of_{min(cfg.best_of)}"] = (
            statistics.median(secs) / base
        )
        row["budget_ms"] = budget_ms
        row["within_budget"] = row["p99_ms"] <= budget_ms
        rows.append(row)
    return rows
