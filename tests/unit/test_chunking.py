"""Chunk execution: k of H per chunk, the next one requested ahead, late chunks aligned or held, blending."""

from __future__ import annotations

import numpy as np
import pytest

from actors.chunking import Chunk, ChunkExecutor


def chunk(origin: int, cid: int, h: int = 10, version: int = 0) -> Chunk:
    a = np.zeros((h, 2), np.float32)
    a[:, 0] = origin
    a[:, 1] = np.arange(h)
    return Chunk(a, version, origin, cid)


def test_executes_k_actions_then_switches_to_the_chunk_requested_lead_steps_ahead():
    ex = ChunkExecutor(execute=4, lead_steps=1)
    assert ex.wants_request(0)
    ex.mark_requested()
    ex.offer(chunk(0, 1))
    used, requests = [], []
    cid = 1
    for t in range(12):
        if ex.wants_request(t):
            requests.append(t)
            ex.mark_requested()
            cid += 1
            ex.offer(chunk(t, cid))  # an instant policy
        p = ex.next(t)
        used.append((p.chunk_id, p.index))
    assert requests == [3, 7, 11]
    assert used[:4] == [(1, 0), (1, 1), (1, 2), (1, 3)]
    # the chunk computed from step 3's observation runs from step 4 at index 1: aligned with the world
    assert used[4:8] == [(2, 1), (2, 2), (2, 3), (2, 4)]
    assert used[8] == (3, 1)


def test_late_chunk_means_hold_then_starts_at_the_index_of_the_current_step():
    ex = ChunkExecutor(execute=3, lead_steps=1)
    ex.mark_requested()
    ex.offer(chunk(0, 1))
    assert [ex.next(t).index for t in range(3)] == [0, 1, 2]
    assert ex.due(3) and ex.next(3) is None and ex.next(4) is None  # nothing fresh: hold
    ex.offer(chunk(2, 2))  # requested at step 2, arrives at step 5
    p = ex.next(5)
    assert (p.chunk_id, p.index) == (2, 3)


def test_a_chunk_whose_whole_plan_is_in_the_past_is_dropped_and_asked_for_again():
    ex = ChunkExecutor(execute=2)
    ex.offer(chunk(0, 1, h=4))
    assert ex.next(10) is None and ex.stale_dropped == 1 and ex.wants_request(10)


def test_blending_ramps_from_the_old_plan_to_the_new():
    ex = ChunkExecutor(execute=2, lead_steps=0, blend_steps=3)
    old = Chunk(np.zeros((10, 1), np.float32), 0, 0, 1)
    new = Chunk(np.ones((10, 1), np.float32), 1, 2, 2)
    ex.offer(old)
    ex.next(0), ex.next(1)
    ex.offer(new)
    got = [ex.next(t) for t in (2, 3)]
    assert [round(float(p.action[0]), 3) for p in got] == [0.25, 0.5]
    assert all(p.blended and p.version == 1 for p in got)


def test_failed_request_is_retried_at_the_next_step():
    ex = ChunkExecutor(execute=2)
    ex.mark_requested()
    assert not ex.wants_request(0)
    ex.request_failed()
    assert ex.wants_request(0)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="lead_steps"):
        ChunkExecutor(execute=2, lead_steps=3)
