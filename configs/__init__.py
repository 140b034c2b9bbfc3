"""Hydra config groups; the schemas are dataclasses beside each component (see rlpost.config)."""
