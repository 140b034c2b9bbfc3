"""The VLA policy: a vision-language backbone and a flow-matching action expert (pi0-shaped)."""

from rlpost.policy.backbone import Backbone, Prefix
from rlpost.policy.checkpoint import (
    CheckpointError,
    HeadWeights,
    apply_head,
    load_checkpoint,
    load_head_file,
    save_checkpoint,
    save_head,
)
from rlpost.policy.config import ExpertConfig, HFBackboneConfig, PolicyConfig, TinyBackboneConfig
from rlpost.policy.normalizer import NormStats
from rlpost.policy.vla import VLA, ObsBatch, build_backbone

__all__ = [
    "VLA",
    "Backbone",
    "CheckpointError",
    "ExpertConfig",
    "HFBackboneConfig",
    "HeadWeights",
    "NormStats",
    "ObsBatch",
    "PolicyConfig",
    "Prefix",
    "TinyBackboneConfig",
    "apply_head",
    "build_backbone",
    "load_checkpoint",
    "load_head_file",
    "save_checkpoint",
    "save_head",
]
