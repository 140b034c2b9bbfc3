"""The frozen-backbone feature cache: each frame through the backbone once, exact, keyed by fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlpost.feature_cache import FeatureCache
from rlpost.policy import VLA


def _episodes(n_eps: int = 3, t: int = 5) -> dict[str, tuple[dict[str, np.ndarray], str]]:
    rng = np.random.default_rng(0)
    return {
        f"ep{i}": ({"top": rng.integers(0, 255, (t + i, 32, 32, 3), dtype=np.uint8)}, f"touch block {i}")
        for i in range(n_eps)
    }


@pytest.fixture
def frozen_vla(small_policy_cfg):
    vla = VLA(small_policy_cfg())
    vla.backbone.freeze()
    return vla


def test_cached_prefixes_equal_fresh_encoding_and_the_backbone_runs_once_per_frame(frozen_vla):
    eps = _episodes()
    loads = []

    def loader(eid):
        loads.append(eid)
        return eps[eid]

    cache = FeatureCache(frozen_vla.backbone, loader, batch_size=4)
    keys = [("ep2", 6), ("ep0", 1), ("ep2", 0), ("ep1", 3)]
    prefix = cache.prefixes(keys)
    for row, (eid, t) in enumerate(keys):
        images, instr = eps[eid]
        fresh = frozen_vla.backbone({"top": torch.from_numpy(images["top"][t : t + 1])}, [instr])
        # equal up to float summation order (the cache encodes frames in batches)
        torch.testing.assert_close(prefix.tokens[row], fresh.tokens[0], atol=1e-5, rtol=1e-5)
        assert torch.equal(prefix.mask[row], fresh.mask[0])
    calls = cache.stats.backbone_calls
    assert cache.stats.misses == 5 + 6 + 7  # three whole episodes, once each
    cache.prefixes(keys * 3)
    assert cache.stats.backbone_calls == calls and sorted(loads) == ["ep0", "ep1", "ep2"]
    assert cache.stats.hit_rate > 0.5


def test_spilled_features_are_reused_by_a_new_cache_without_the_backbone(tmp_path, frozen_vla):
    eps = _episodes()
    first = FeatureCache(frozen_vla.backbone, eps.__getitem__, root=tmp_path)
    a = first.prefixes([("ep0", 2), ("ep1", 4)])
    second = FeatureCache(frozen_vla.backbone, lambda eid: pytest.fail(f"loaded {eid} again"), root=tmp_path)
    b = second.prefixes([("ep0", 2), ("ep1", 4)])
    assert (
        torch.equal(a.tokens, b.tokens) and second.stats.backbone_calls == 0 and second.stats.disk_reads == 2
    )


def test_a_different_backbone_never_reads_anothers_features(tmp_path, small_policy_cfg, frozen_vla):
    eps = _episodes()
    FeatureCache(frozen_vla.backbone, eps.__getitem__, root=tmp_path).warm(["ep0"])
    other = VLA(small_policy_cfg())
    other.backbone.freeze()
    cache = FeatureCache(other.backbone, eps.__getitem__, root=tmp_path)
    cache.warm(["ep0"])
    assert cache.stats.backbone_calls > 0
    assert len(list(tmp_path.iterdir())) == 2  # one directory per fingerprint


def test_memory_stays_within_budget_by_evicting_old_episodes(frozen_vla):
    eps = _episodes(n_eps=3)
    cache = FeatureCache(frozen_vla.backbone, eps.__getitem__, max_memory_mb=0.0001)
    cache.warm(["ep0", "ep1", "ep2"])
    assert len(cache._mem) == 1


def test_a_backbone_that_is_not_frozen_is_refused(small_policy_cfg):
    with pytest.raises(ValueError, match="frozen backbone"):
        FeatureCache(VLA(small_policy_cfg()).backbone, lambda eid: None)


def test_a_damaged_cache_file_is_recomputed_with_a_warning(tmp_path, frozen_vla, caplog):
    eps = _episodes()
    first = FeatureCache(frozen_vla.backbone, eps.__getitem__, root=tmp_path)
    want = first.prefixes([("ep0", 1)])
    (tok,) = list(tmp_path.rglob("ep0.tokens.npy"))
    tok.write_bytes(tok.read_bytes()[:50])
    second = FeatureCache(frozen_vla.backbone, eps.__getitem__, root=tmp_path)
    got = second.prefixes([("ep0", 1)])
    assert torch.equal(want.tokens, got.tokens)
    assert second.stats.backbone_calls > 0 and "recomputing" in caplog.text
