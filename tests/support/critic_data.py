"""Hand-built critic windows whose values are known, for the critic's and the actors' tests."""

from __future__ import annotations

import numpy as np
import torch

from learner.chunk_critic import WindowData, episode_windows


def hand_built_windows(n_eps: int, k: int, a_dim: int, seed: int, two_stage: bool) -> WindowData:
    """Episodes in which the sign of the chunk's first action decides the outcome.

    One stage: one window, success iff a > 0. Two stages: a neutral first window (a random), then
    the deciding window; the head's candidates at the second state always include a good chunk.
    """
    rng = np.random.default_rng(seed)
    gamma = 0.9
    keys, pooled, state, chunk, nxt, disc, term, ep, succ, cands = [], [], [], [], [], [], [], [], [], []
    for i in range(n_eps):
        stages = 2 if two_stage else 1
        acts = rng.normal(size=(stages, k, a_dim)).astype(np.float32)
        success = bool(acts[-1, 0, 0] > 0)
        w = episode_windows(stages * k, k, 1, gamma, success, True)
        keep = [r for r, t in enumerate(w.starts) if t % k == 0]  # one window per stage (no overlaps)
        base = len(keys)
        for j, r in enumerate(keep):
            t = int(w.starts[r])
            keys.append((f"e{i}", t))
            pooled.append(np.full(4, float(j), np.float32))  # the stage is visible in the features
            state.append(np.zeros(1, np.float32))
            chunk.append(acts[j])
            nxt.append(base + keep.index(int(w.next_start[r]) // 1) if w.next_start[r] >= 0 else -1)
            disc.append(w.discount[r]), term.append(w.terminal_value[r])
            ep.append(i), succ.append(success)
            good, bad = np.abs(rng.normal(size=(k, a_dim))), -np.abs(rng.normal(size=(k, a_dim)))
            cands.append(np.stack([bad, good]).astype(np.float32))
    t = torch.tensor
    return WindowData(
        keys=keys,
        pooled=t(np.stack(pooled)),
        state=t(np.stack(state)),
        chunk=t(np.stack(chunk)),
        next_row=t(nxt, dtype=torch.long),
        discount=t(np.asarray(disc, np.float32)),
        terminal_value=t(np.asarray(term, np.float32)),
        candidates=t(np.stack(cands)),
        episode=np.asarray(ep),
        success=np.asarray(succ),
        terminal=np.ones(len(keys), bool),
        episode_ids=[f"e{i}" for i in range(n_eps)],
    )
