"""rlpost: online RL post-training of flow-matching VLA robot policies."""

__version__ = "0.1.0"
