"""The VLA: a backbone (images + instruction -> prefix) and a flow-matching action expert.

Typical use::

    prefix = vla.encode(batch)                       # once per observation
    chunk = vla.sample(prefix, batch.state)          # N Euler steps reusing the prefix K/V
    loss = vla.flow_loss(prefix, state, actions, weights=w).mean()   # training

Inputs and outputs are in robot units; normalisation happens inside with the
dataset statistics stored in the model (and the checkpoint).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rlpost.policy.action_expert import COND_DROPPED, COND_POSITIVE, ActionExpert
from rlpost.policy.backbone import Backbone, Prefix
from rlpost.policy.config import PolicyConfig
from rlpost.policy.flow import euler_integrate, euler_invert, noisy_actions, sample_time
from rlpost.policy.normalizer import Normalizer, NormStats
from rlpost.policy.steering import SteeringNet
from rlpost.policy.tiny_backbone import TinyBackbone
from rlpost.schema import Observation, SchemaError, check_noise_scale

HEAD_PREFIXES = ("expert.", "state_norm.", "action_norm.", "steer.")
# Settings that travel in a head file beside the weights (scalars, not module state).
STEER_BOUND_KEY, GUIDANCE_KEY = "steer.bound", "expert.cond_guidance"


@dataclass
class ObsBatch:
    """A batch of observations as the policy takes them."""

    images: dict[str, np.ndarray | Tensor]  # camera -> uint8 [B, h, w, 3]
    state: np.ndarray | Tensor  # float32 [B, S], robot units
    instructions: list[str]  # B strings

    @staticmethod
    def stack(observations: Sequence[Observation]) -> ObsBatch:
        """Stack single observations (all with the same cameras and sizes)."""
        if not observations:
            raise ValueError("ObsBatch.stack: no observations")
        cams = observations[0].images.keys()
        return ObsBatch(
            images={c: np.stack([o.images[c] for o in observations]) for c in cams},
            state=np.stack([o.state for o in observations]),
            instructions=[o.instruction for o in observations],
        )


def build_backbone(cfg: PolicyConfig) -> Backbone:
    """The backbone a config names, with fresh (tiny) or pretrained (hf) weights."""
    if cfg.backbone == "tiny":
        return TinyBackbone(cfg.tiny, tuple(cfg.cameras))
    from rlpost.policy.hf_backbone import HFBackbone  # transformers is heavy: import on demand

    return HFBackbone(cfg.hf, tuple(cfg.cameras))


def _tensor(x: np.ndarray | Tensor) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x


class VLA(nn.Module):
    """Vision-language-action model in the shape of pi0. See the module docstring."""

    def __init__(self, cfg: PolicyConfig, backbone: Backbone | None = None) -> None:
        super().__init__()
        if cfg.action_dim < 1:
            raise ValueError("policy.action_dim must be set (>= 1) before building the VLA")
        self.cfg = cfg
        self.backbone = backbone if backbone is not None else build_backbone(cfg)
        if tuple(self.backbone.cameras) != tuple(cfg.cameras):
            raise ValueError(f"backbone cameras {self.backbone.cameras} != policy cameras {cfg.cameras}")
        self.expert = ActionExpert(
            cfg.expert, self.backbone.width, cfg.policy_state_dim, cfg.action_dim, cfg.horizon
        )
        self.state_norm = Normalizer(cfg.policy_state_dim)
        self.action_norm = Normalizer(cfg.action_dim)
        self.steer = (
            SteeringNet(
                self.backbone.width, cfg.policy_state_dim, cfg.horizon, cfg.action_dim, cfg.steer_bound
            )
            if cfg.steer_bound > 0
            else None
        )
        self.head_version = 0

    # -- Policy protocol -------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self.head_version

    @torch.no_grad()
    def act(self, obs: Observation, noise: np.ndarray | None = None) -> np.ndarray:
        """One observation -> a chunk float32 [H, A] in robot units."""
        nz = None if noise is None else _tensor(noise).unsqueeze(0)
        return self.act_batch(ObsBatch.stack([obs]), noise=nz)[0].cpu().numpy()

    @torch.no_grad()
    def act_with_noise(self, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`act` and the initial noise it sampled from, both float32 [H, A] (the robots'
        inference worker records the noise with the chunk)."""
        chunk, noise = self.act_sampled(ObsBatch.stack([obs]))
        return chunk[0].cpu().numpy(), noise[0].cpu().numpy()

    @torch.no_grad()
    def act_batch(
        self,
        batch: ObsBatch,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        noise_scale: float | None = None,
    ) -> Tensor:
        """Chunks for acting, float32 [B, H, A]: an advantage-conditioned expert acts with the
        positive indicator and ``cfg.act_guidance``; drawn noise is scaled by ``noise_scale``
        (default ``cfg.act_noise_scale``)."""
        return self.act_sampled(batch, noise, generator, noise_scale)[0]

    @torch.no_grad()
    def act_sampled(
        self,
        batch: ObsBatch,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        noise_scale: float | None = None,
    ) -> tuple[Tensor, Tensor]:
        """:meth:`act_batch` and the initial noise behind each chunk: (chunks, noise), both
        float32 [B, H, A]; ``sample(prefix, state, noise=noise)`` gives the same chunks again."""
        prefix = self.encode(batch)
        if noise is not None:
            return self._act_sample(
                prefix, batch.state, noise.to(self._device()), generator, noise_scale
            ), noise
        chunks, drawn = self.sampled_candidates(prefix, batch.state, 1, generator, noise_scale)
        return chunks[:, 0], drawn[:, 0]

    @torch.no_grad()
    def candidates(
        self,
        prefix: Prefix,
        state: np.ndarray | Tensor,
        n: int,
        generator: torch.Generator | None = None,
        noise_scale: float | None = None,
    ) -> Tensor:
        """``n`` chunks per observation as the robots act, float32 [B, n, H, A], robot units: the
        prefix is computed once and shared by all n (its K/V projected once for the batch of B*n).
        With n = 1 the noise drawn from ``generator`` is the same as :meth:`act_batch`'s."""
        return self.sampled_candidates(prefix, state, n, generator, noise_scale)[0]

    @torch.no_grad()
    def sampled_candidates(
        self,
        prefix: Prefix,
        state: np.ndarray | Tensor,
        n: int,
        generator: torch.Generator | None = None,
        noise_scale: float | None = None,
    ) -> tuple[Tensor, Tensor]:
        """:meth:`candidates` and their initial noise, both float32 [B, n, H, A]."""
        if n < 1:
            raise ValueError(f"VLA.candidates: n={n} must be >= 1")
        b = prefix.batch_size
        rows = torch.arange(b, device=prefix.tokens.device).repeat_interleave(n)
        prefix_rows = prefix.index(rows) if n > 1 else prefix
        state_rows = _tensor(state)[rows.cpu()] if n > 1 else _tensor(state)
        noise = self.initial_noise(prefix_rows, state_rows, generator, noise_scale)
        chunks = self._act_sample(prefix_rows, state_rows, noise, generator, noise_scale)
        shape = (b, n, self.cfg.horizon, self.cfg.action_dim)
        return chunks.view(shape), noise.view(shape)

    @torch.no_grad()
    def initial_noise(
        self,
        prefix: Prefix,
        state: np.ndarray | Tensor,
        generator: torch.Generator | None = None,
        noise_scale: float | None = None,
    ) -> Tensor:
        """The flow's initial noise as acting draws it, float32 [B, H, A]: ``noise_scale`` (default
        ``cfg.act_noise_scale``) times N(0, I), moved by the steering net if the head has one."""
        scale = self.cfg.act_noise_scale if noise_scale is None else noise_scale
        check_noise_scale(scale, "VLA.sample: noise_scale")
        b = prefix.batch_size
        noise = scale * torch.randn((b, self.cfg.horizon, self.cfg.action_dim), generator=generator).to(
            self._device()
        )
        if self.steer is not None:
            s = self.state_norm.normalize(self.select_state(self._check_state(state, "VLA.initial_noise", b)))
            noise = noise + self.steer(prefix, s)
        return noise

    def _act_sample(
        self,
        prefix: Prefix,
        state: np.ndarray | Tensor,
        noise: Tensor | None,
        generator: torch.Generator | None,
        noise_scale: float | None,
    ) -> Tensor:
        cond = (
            guidance_cond(prefix.batch_size, self._device()) if self.expert.cond_embed is not None else None
        )
        return self.sample(
            prefix,
            state,
            noise=noise,
            cond=cond,
            guidance=self.cfg.act_guidance,
            generator=generator,
            noise_scale=self.cfg.act_noise_scale if noise_scale is None else noise_scale,
        )

    def select_state(self, state: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """The state dims the policy sees (``cfg.state_keep``) of float [..., S]."""
        return state[..., list(self.cfg.state_keep)] if self.cfg.state_keep else state

    # -- normalisation -----------------------------------------------------------------------------
    def set_norm_stats(self, state: NormStats, action: NormStats) -> None:
        self.state_norm.set_stats(state)
        self.action_norm.set_stats(action)

    # -- validation ----------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.action_norm.mean.device

    def _check_state(self, state: np.ndarray | Tensor, where: str, batch: int | None = None) -> Tensor:
        s = _tensor(state)
        want = (batch if batch is not None else s.shape[0], self.cfg.state_dim)
        if s.ndim != 2 or tuple(s.shape) != want:
            raise SchemaError(f"{where}: state has shape {tuple(s.shape)}, expected [B, S] = {want}")
        if s.dtype != torch.float32:
            raise SchemaError(f"{where}: state has dtype {s.dtype}, expected float32")
        if not torch.isfinite(s).all():
            raise SchemaError(f"{where}: state contains NaN/Inf")
        return s.to(self._device())

    def _check_images(self, images: dict, batch: int, where: str) -> dict[str, Tensor]:
        if set(images) != set(self.cfg.cameras):
            raise SchemaError(
                f"{where}: images has cameras {sorted(images)}, policy expects {sorted(self.cfg.cameras)}"
            )
        out = {}
        for cam, img in images.items():
            t = _tensor(img)
            if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[0] != batch or t.shape[-1] != 3:
                raise SchemaError(
                    f"{where}: images[{cam!r}] has shape {tuple(t.shape)} dtype {t.dtype}, "
                    f"expected uint8 [B={batch}, h, w, 3]"
                )
            out[cam] = t
        return out

    def _check_actions(self, actions: Tensor, batch: int, where: str) -> Tensor:
        want = (batch, self.cfg.horizon, self.cfg.action_dim)
        if tuple(actions.shape) != want:
            raise SchemaError(
                f"{where}: actions has shape {tuple(actions.shape)}, expected [B, H, A] = {want}"
            )
        if not torch.isfinite(actions).all():
            raise SchemaError(f"{where}: actions contain NaN/Inf")
        return actions.to(self._device(), torch.float32)

    # -- model -----------------------------------------------------------------------------------------
    def encode(self, batch: ObsBatch) -> Prefix:
        """Observations -> the prefix (once per observation; frozen backbones run without grad)."""
        n = len(batch.instructions)
        images = self._check_images(batch.images, n, "VLA.encode")
        self._check_state(batch.state, "VLA.encode", n)
        return self.backbone(images, list(batch.instructions))

    def sample(
        self,
        prefix: Prefix,
        state: np.ndarray | Tensor,
        noise: Tensor | None = None,
        num_steps: int | None = None,
        cond: Tensor | None = None,
        guidance: float = 1.0,
        generator: torch.Generator | None = None,
        reuse_prefix: bool = True,
        noise_scale: float = 1.0,
    ) -> Tensor:
        """Integrate the flow from noise to an action chunk.

        Args:
            prefix: from :meth:`encode`, batch B.
            state: float32 [B, S], robot units.
            noise: float32 [B, H, A] initial noise ε (standard normal if None).
            num_steps: Euler steps (default cfg.num_steps).
            cond: int64 [B] advantage indicator (use_cond experts); with guidance != 1
                the velocity is v_drop + guidance·(v_cond − v_drop) (classifier-free guidance).
            reuse_prefix: False re-projects the prefix at every step (only for the benchmark).
            noise_scale: drawn noise is noise_scale · N(0, I) (exploration); a given ``noise`` is used as is.

        Returns:
            float32 [B, H, A], robot units.
        """
        b = prefix.batch_size
        s = self.state_norm.normalize(self.select_state(self._check_state(state, "VLA.sample", b)))
        shape = (b, self.cfg.horizon, self.cfg.action_dim)
        if noise is None:
            check_noise_scale(noise_scale, "VLA.sample: noise_scale")
            noise = noise_scale * torch.randn(shape, generator=generator).to(self._device())
            if self.steer is not None:  # the steering net moves the noise's mean
                with torch.no_grad():
                    noise = noise + self.steer(prefix, s)
        elif tuple(noise.shape) != shape:
            raise SchemaError(f"VLA.sample: noise has shape {tuple(noise.shape)}, expected {shape}")
        kv = self.expert.prefix_kv(prefix) if reuse_prefix else None
        drop = torch.full((b,), COND_DROPPED, dtype=torch.long, device=noise.device)

        def velocity(x: Tensor, tau: Tensor) -> Tensor:
            k = kv if kv is not None else self.expert.prefix_kv(prefix)
            v = self.expert.velocity(k, s, x, tau, cond)
            if cond is not None and guidance != 1.0:
                v_drop = self.expert.velocity(k, s, x, tau, drop)
                v = v_drop + guidance * (v - v_drop)
            return v

        with torch.no_grad():
            x0 = euler_integrate(velocity, noise.to(self._device()), num_steps or self.cfg.num_steps)
        return self.action_norm.unnormalize(x0)

    def steer_mean(self, prefix: Prefix, state: np.ndarray | Tensor) -> Tensor:
        """The steering net's noise mean float32 [B, H, A] (with grad; needs ``steer_bound > 0``)."""
        if self.steer is None:
            raise ValueError("this policy has no steering net (policy.steer_bound = 0)")
        b = prefix.batch_size
        s = self.state_norm.normalize(self.select_state(self._check_state(state, "VLA.steer_mean", b)))
        return self.steer(prefix, s)

    @torch.no_grad()
    def invert(
        self,
        prefix: Prefix,
        state: np.ndarray | Tensor,
        actions: np.ndarray | Tensor,
        num_steps: int | None = None,
        cond: Tensor | None = None,
    ) -> Tensor:
        """The initial noise float32 [B, H, A] from which :meth:`sample` (same steps, no guidance)
        gives approximately ``actions`` [B, H, A] (robot units); see ``flow.euler_invert``."""
        b = prefix.batch_size
        s = self.state_norm.normalize(self.select_state(self._check_state(state, "VLA.invert", b)))
        a = self.action_norm.normalize(self._check_actions(_tensor(actions), b, "VLA.invert"))
        kv = self.expert.prefix_kv(prefix)
        return euler_invert(
            lambda x, tau: self.expert.velocity(kv, s, x, tau, cond), a, num_steps or self.cfg.num_steps
        )

    def flow_loss(
        self,
        prefix: Prefix,
        state: np.ndarray | Tensor,
        actions: np.ndarray | Tensor,
        weights: Tensor | None = None,
        cond: Tensor | None = None,
        action_mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Per-sample flow-matching loss ‖v_θ(x_τ, τ) − (ε − a)‖², float32 [B].

        Args:
            actions: float32 [B, H, A] target chunk, robot units.
            weights: float32 [B] per-sample weights (advantage weighting); multiplied in.
            cond: int64 [B] advantage indicator (COND_* values) for use_cond experts.
            action_mask: bool [B, H], False for chunk steps past the episode's end (not trained on).
        """
        b = prefix.batch_size
        s = self.state_norm.normalize(self.select_state(self._check_state(state, "VLA.flow_loss", b)))
        a = self.action_norm.normalize(self._check_actions(_tensor(actions), b, "VLA.flow_loss"))
        noise = torch.randn(a.shape, generator=generator).to(a.device)
        tau = sample_time(b, self.cfg.time_beta_a, self.cfg.time_beta_b, self.cfg.time_min, generator).to(
            a.device
        )
        x_t, u = noisy_actions(a, noise, tau)
        v = self.expert(prefix, s, x_t, tau, cond)
        err = (v - u).pow(2).mean(-1)  # [B, H]
        if action_mask is not None:
            m = action_mask.to(err.device, torch.float32)
            per_sample = (err * m).sum(-1) / m.sum(-1).clamp(min=1.0)
        else:
            per_sample = err.mean(-1)
        if weights is not None:
            if tuple(weights.shape) != (b,):
                raise SchemaError(
                    f"VLA.flow_loss: weights has shape {tuple(weights.shape)}, expected [B] = ({b},)"
                )
            per_sample = per_sample * weights.to(per_sample.device)
        return per_sample

    # -- head (what the learner trains and ships) ----------------------------------------------------
    def head_parameters(self) -> list[nn.Parameter]:
        """Everything that ships: the expert and, if present, the steering net."""
        return list(self.expert.parameters()) + (
            list(self.steer.parameters()) if self.steer is not None else []
        )

    def head_state(self) -> dict[str, np.ndarray]:
        """The action head as numpy arrays: what ships to robots.

        Expert weights, normalisers, the steering net if any, and the two settings a robot
        needs to act with the optional parts (``steer.bound``, ``expert.cond_guidance``),
        so a robot that started from the plain pretrained policy can take any head.
        """
        out = {
            k: v.detach().cpu().numpy().copy()
            for k, v in self.state_dict().items()
            if k.startswith(HEAD_PREFIXES)
        }
        if self.steer is not None:
            out[STEER_BOUND_KEY] = np.array([self.cfg.steer_bound], np.float32)
        if self.expert.cond_embed is not None:
            out[GUIDANCE_KEY] = np.array([self.cfg.act_guidance], np.float32)
        return out

    def _grow_for(self, state: dict[str, np.ndarray | Tensor]) -> None:
        """Add the optional head parts a shipped head carries and this policy lacks."""
        if STEER_BOUND_KEY in state and self.steer is None:
            bound = _scalar(state[STEER_BOUND_KEY])
            self.cfg = dataclasses.replace(self.cfg, steer_bound=bound)
            c = self.cfg
            self.steer = SteeringNet(
                self.backbone.width, c.policy_state_dim, c.horizon, c.action_dim, bound
            ).to(self._device())
        if GUIDANCE_KEY in state and self.expert.cond_embed is None:
            self.cfg = dataclasses.replace(
                self.cfg,
                expert=dataclasses.replace(self.cfg.expert, use_cond=True),
                act_guidance=_scalar(state[GUIDANCE_KEY]),
            )
            self.expert.cond_embed = nn.Embedding(3, self.cfg.expert.width).to(self._device())
        if GUIDANCE_KEY in state:
            self.cfg = dataclasses.replace(self.cfg, act_guidance=_scalar(state[GUIDANCE_KEY]))

    def load_head(self, state: dict[str, np.ndarray | Tensor], version: int) -> None:
        """Load head weights (from :meth:`head_state` or a head file); exact, all keys required.

        A head with a steering net or an advantage-indicator input adds that part here first
        (the learner's steer and adv_conditioned modes ship them); a head without a part this
        policy has is refused (it would act with stale weights).
        """
        self._grow_for(state)
        state = {k: v for k, v in state.items() if k not in (STEER_BOUND_KEY, GUIDANCE_KEY)}
        own = {k: v for k, v in self.state_dict().items() if k.startswith(HEAD_PREFIXES)}
        missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
        if missing or unexpected:
            raise ValueError(
                f"head weights do not fit this policy: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        with torch.no_grad():
            for k, v in state.items():
                t = torch.as_tensor(np.array(v)) if isinstance(v, np.ndarray) else v
                if tuple(t.shape) != tuple(own[k].shape):
                    raise ValueError(
                        f"head weight {k!r} has shape {tuple(t.shape)}, policy has {tuple(own[k].shape)}"
                    )
                own[k].copy_(t)
        self.head_version = version


def _scalar(v: np.ndarray | Tensor) -> float:
    return float(np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v).reshape(-1)[0])


def guidance_cond(batch: int, device: torch.device | str = "cpu") -> Tensor:
    """The positive advantage indicator for acting in adv_conditioned mode."""
    return torch.full((batch,), COND_POSITIVE, dtype=torch.long, device=device)
