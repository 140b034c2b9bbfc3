"""Flow matching as in pi0, as pure functions.

Convention (pi0): x_τ = τ·ε + (1−τ)·a, so τ = 1 is pure noise and τ = 0 the data;
the target velocity is u = dx_τ/dτ = ε − a. Sampling integrates from τ = 1 to 0
with N Euler steps of size −1/N: x ← x − v/N.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def sample_time(
    batch: int, a: float, b: float, t_min: float, generator: torch.Generator | None = None
) -> Tensor:
    """τ = (1 − t_min)·Beta(a, b) + t_min, float32 [B]; a=1.5, b=1 weights noisier times (pi0)."""
    # Beta from two Gammas so a torch.Generator makes it reproducible.
    ga = torch._standard_gamma(torch.full((batch,), a), generator=generator)
    gb = torch._standard_gamma(torch.full((batch,), b), generator=generator)
    return (1.0 - t_min) * ga / (ga + gb) + t_min


def noisy_actions(actions: Tensor, noise: Tensor, tau: Tensor) -> tuple[Tensor, Tensor]:
    """Returns (x_τ, target velocity u = ε − a) for actions, noise [B, H, A] and tau [B]."""
    t = tau[:, None, None]
    return t * noise + (1.0 - t) * actions, noise - actions


def euler_integrate(velocity: Callable[[Tensor, Tensor], Tensor], noise: Tensor, steps: int) -> Tensor:
    """Integrate dx/dτ = v(x, τ) from τ = 1 (x = noise [B, H, A]) to τ = 0 in ``steps`` Euler steps."""
    x, dt = noise, 1.0 / steps
    for i in range(steps):
        tau = torch.full((noise.shape[0],), 1.0 - i * dt, dtype=noise.dtype, device=noise.device)
        x = x - dt * velocity(x, tau)
    return x


def euler_invert(velocity: Callable[[Tensor, Tensor], Tensor], actions: Tensor, steps: int) -> Tensor:
    """Integrate the same flow backwards, from τ = 0 (x = actions [B, H, A]) to τ = 1: the noise
    that the sampler would have turned into (approximately) these actions.

    Each step mirrors one step of :func:`euler_integrate` (x ← x + v(x, τ)/N with τ rising), so
    for a smooth velocity field the round trip returns the input up to the Euler error. Used to
    find, for any recorded chunk (the policy's own, a person's takeover, a demo), the initial
    noise a noise-space steering net should have picked.
    """
    x, dt = actions, 1.0 / steps
    for i in range(steps):
        tau = torch.full((actions.shape[0],), (i + 1) * dt, dtype=actions.dtype, device=actions.device)
        x = x + dt * velocity(x, tau)
    return x
