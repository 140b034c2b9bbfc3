"""Wrap a peer suite's gymnasium env (image observations) into rlpost's observation schema.

Peer suites name and nest their observations differently and give no language; the
adapter picks the camera images and state entries by key path (:class:`PeerConfig`),
adds the configured instruction, and maps rlpost's actions in [-1, 1] affinely onto the
peer's (finite) action box. Peers are an optional extra (``pip install 'rlpost[peers]'``).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlpost.interfaces import OBS_IMAGES, OBS_INSTRUCTION, OBS_STATE
from rlpost.schema import RobotSpec, SchemaError, check_array
from rlpost.sim.base import INSTRUCTION_CHARSET
from rlpost.sim.config import PeerConfig, nearest_name

PEERS: Mapping[str, PeerConfig] = MappingProxyType({"pusht": PeerConfig()})


def _lookup(tree: Any, path: str, where: str) -> Any:
    if path == ".":
        return tree
    node = tree
    for part in path.split("/"):
        try:
            node = node[part]
        except (KeyError, TypeError, IndexError):
            raise SchemaError(
                f"{where}: peer observation has no entry {path!r} (failed at {part!r})"
            ) from None
    return node


class PeerRobot(gym.Env):
    """A peer suite's env seen as an rlpost :class:`~rlpost.interfaces.Robot`.

    Observations are ``{"images": {camera: uint8 [h, w, 3]}, "state": float32 [S],
    "instruction": str}``; ``info`` keeps the peer's entries and adds ``is_success``,
    ``is_failure`` (always False: peers rarely say) and ``progress``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    def __init__(self, cfg: PeerConfig | None = None) -> None:
        self.cfg = cfg = cfg or PeerConfig()
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame prints a banner on import
        try:
            importlib.import_module(cfg.module)
        except ImportError as err:
            raise ModuleNotFoundError(
                f"peer suite {cfg.name!r} needs the package {cfg.package_hint!r} "
                f"(pip install 'rlpost[peers]'); importing {cfg.module!r} failed: {err}"
            ) from err
        self.env = gym.make(
            cfg.env_id, disable_env_checker=True, max_episode_steps=cfg.max_steps, **cfg.make_kwargs
        )
        where = f"peer {cfg.name!r}"
        act = self.env.action_space
        if not (
            isinstance(act, spaces.Box) and np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))
        ):
            raise SchemaError(f"{where}: action space {act} is not a bounded Box; cannot map [-1, 1] onto it")
        self._act_low = act.low.astype(np.float64).ravel()
        self._act_high = act.high.astype(np.float64).ravel()
        self._act_dtype, self._act_shape = act.dtype, act.shape
        obs_space = self.env.observation_space
        cams: dict[str, tuple[int, int]] = {}
        for cam, path in cfg.image_keys.items():
            box = _lookup(obs_space, path, where)
            if not (isinstance(box, spaces.Box) and len(box.shape) == 3 and box.shape[2] == 3):
                raise SchemaError(f"{where}: image key {path!r} is {box}, expected a Box of shape (h, w, 3)")
            cams[cam] = (int(box.shape[0]), int(box.shape[1]))
        lows, highs = [], []
        for path in cfg.state_keys:
            box = _lookup(obs_space, path, where)
            lows.append(np.asarray(box.low, dtype=np.float64).ravel())
            highs.append(np.asarray(box.high, dtype=np.float64).ravel())
        low = np.concatenate(lows) if lows else np.zeros(0)
        high = np.concatenate(highs) if highs else np.zeros(0)
        finite = np.isfinite(low) & np.isfinite(high) & (high > low)
        self._state_low = np.where(finite, low, -1.0) if cfg.normalize_state else None
        self._state_span = np.where(finite, high - low, 2.0) if cfg.normalize_state else None
        a_dim = self._act_low.size
        self.robot_spec = RobotSpec(
            cameras=cams,
            state_dim=low.size,
            action_dim=a_dim,
            action_low=np.full(a_dim, -1.0, dtype=np.float32),
            action_high=np.full(a_dim, 1.0, dtype=np.float32),
            control_hz=cfg.control_hz,
        ).validate(where)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(a_dim,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                OBS_IMAGES: spaces.Dict(
                    {c: spaces.Box(0, 255, shape=(*hw, 3), dtype=np.uint8) for c, hw in cams.items()}
                ),
                OBS_STATE: spaces.Box(-np.inf, np.inf, shape=(low.size,), dtype=np.float32),
                OBS_INSTRUCTION: spaces.Text(max_length=200, charset=INSTRUCTION_CHARSET),
            }
        )
        self._where = where
        self._t = 0

    def to_peer_action(self, action: np.ndarray) -> np.ndarray:
        """Map an rlpost action in [-1, 1] (clipped) onto the peer's action box."""
        a = np.clip(action.astype(np.float64), -1.0, 1.0)
        peer = self._act_low + (a + 1.0) * 0.5 * (self._act_high - self._act_low)
        return peer.reshape(self._act_shape).astype(self._act_dtype)

    def _convert(self, raw: Any) -> dict:
        images = {}
        for cam, path in self.cfg.image_keys.items():
            img = np.ascontiguousarray(_lookup(raw, path, self._where))
            images[cam] = img if img.dtype == np.uint8 else np.clip(img, 0, 255).astype(np.uint8)
        parts = [
            np.asarray(_lookup(raw, p, self._where), dtype=np.float64).ravel() for p in self.cfg.state_keys
        ]
        state = np.concatenate(parts) if parts else np.zeros(0)
        if self._state_low is not None:
            state = 2.0 * (state - self._state_low) / self._state_span - 1.0
        return {
            OBS_IMAGES: images,
            OBS_STATE: state.astype(np.float32),
            OBS_INSTRUCTION: self.cfg.instruction,
        }

    def _info(self, raw_info: dict, success: bool) -> dict:
        info = dict(raw_info)
        info["is_success"] = success
        info["is_failure"] = False
        key = self.cfg.progress_key
        if key is not None and key in raw_info:
            info["progress"] = float(np.clip(float(raw_info[key]) * self.cfg.progress_scale, 0.0, 1.0))
        else:
            info["progress"] = 1.0 if success else 0.0
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        raw, info = self.env.reset(seed=seed, options=options)
        self._t = 0
        return self._convert(raw), self._info(info, False)

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        where = f"{self._where} step {self._t}"
        check_array(
            action,
            name="action",
            where=where,
            dtype=np.float32,
            shape=(self.robot_spec.action_dim,),
            finite=True,
        )
        raw, reward, terminated, truncated, info = self.env.step(self.to_peer_action(action))
        self._t += 1
        success = bool(info.get("is_success", False))
        return self._convert(raw), float(reward), bool(terminated), bool(truncated), self._info(info, success)

    def render(self) -> np.ndarray:  # type: ignore[override]
        return self.env.render()  # type: ignore[return-value]

    def close(self) -> None:
        self.env.close()


def make_peer(name: str = "pusht", cfg: PeerConfig | None = None, **overrides: object) -> PeerRobot:
    """Build a peer-suite robot by short name (a key of :data:`PEERS`) or from ``cfg``.

    Raises:
        ValueError: unknown peer name or config field.
        ModuleNotFoundError: the peer package is not installed (names the pip pin).
    """
    if cfg is None:
        if name not in PEERS:
            raise ValueError(
                f"unknown peer suite {name!r}; known: {sorted(PEERS)}" + nearest_name(name, list(PEERS))
            )
        cfg = PEERS[name]
    names = [f.name for f in dataclasses.fields(PeerConfig)]
    for key in overrides:
        if key not in names:
            raise ValueError(f"PeerConfig has no field {key!r}" + nearest_name(key, names))
    # Fresh dicts, so changing one robot's config never edits the registered default.
    fresh = {"make_kwargs": dict(cfg.make_kwargs), "image_keys": dict(cfg.image_keys)}
    return PeerRobot(dataclasses.replace(cfg, **{**fresh, **overrides}))  # type: ignore[arg-type]
