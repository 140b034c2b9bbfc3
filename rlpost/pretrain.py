"""`rlpost pretrain`: imitation pretraining of the whole VLA on a store of demonstrations.

Plain flow matching on (observation, action chunk) samples, train/validation split
by episode, cosine learning rate with warm-up, gradient clipping, checkpoints that
resume exactly (weights, optimizer, RNG, step), metrics to metrics.jsonl and wandb.

Run directory::

    <out>/checkpoints/last/   the latest checkpoint (+ training state); resume starts here
    <out>/policy/             the final policy, what `rlpost eval` and practice start from
    <out>/metrics.jsonl       pretrain/loss, pretrain/val_loss, pretrain/lr, ...

With ``subgoal.weight > 0`` an auxiliary loss regresses hindsight subgoals (where the
gripper next closes or opens, rlpost.data.subgoals) from the prefix, which teaches the
backbone to locate the object the instruction names; the read-out is dropped afterwards.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from rlpost.data.chunk_dataset import ChunkBatch, ChunkDataset, split_by_episode
from rlpost.data.episode_store import EpisodeStore
from rlpost.data.subgoals import SubgoalSpec
from rlpost.metrics import LoggerConfig, MetricsLogger
from rlpost.policy import VLA, NormStats, ObsBatch, PolicyConfig, load_checkpoint, save_checkpoint
from rlpost.policy.backbone import Prefix
from rlpost.policy.subgoal import SubgoalHead
from rlpost.policy.training_state import load_training_state, save_training_state

log = logging.getLogger(__name__)
AUX_FILE = "subgoal_aux.safetensors"  # training-only read-out, kept beside the resumable checkpoint


@dataclass
class SubgoalAuxConfig:
    """The hindsight-subgoal auxiliary loss (off at weight 0; needs a gripper command dim)."""

    weight: float = 0.0  # added to the flow loss as weight * MSE (normalised subgoal units)
    gripper_dim: int = -1  # action dim whose sign is the gripper command (> 0 closes)
    state_dims: list[int] = field(default_factory=lambda: [0, 1])  # state dims locating the gripper
    # > 0: only samples with t < first_steps train the read-out. Early in an episode the next
    # subgoal (which block) can only be told from the instruction, later the gripper's heading
    # gives it away; restricting the loss to the start forces the prefix to ground the words.
    first_steps: int = 0

    def __post_init__(self) -> None:
        if self.weight < 0 or self.first_steps < 0:
            raise ValueError(
                f"pretrain: subgoal.weight={self.weight} and subgoal.first_steps={self.first_steps} must be >= 0"
            )

    def spec(self) -> SubgoalSpec | None:
        return SubgoalSpec(self.gripper_dim, list(self.state_dims)) if self.weight > 0 else None


@dataclass
class PretrainConfig:
    """Settings of `rlpost pretrain`."""

    store: str = "runs/demos"  # the episode store to learn from
    out: str = "runs/pretrain"  # run directory
    task: str = ""  # only episodes of this task ("" = all)
    policy: PolicyConfig = field(default_factory=lambda: PolicyConfig(horizon=8))
    subgoal: SubgoalAuxConfig = field(default_factory=SubgoalAuxConfig)
    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    val_fraction: float = 0.1  # of episodes, held out
    val_every: int = 250
    val_batches: int = 4
    ckpt_every: int = 500
    resume: bool = True  # continue from <out>/checkpoints/last if it exists
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    device: str = "cpu"  # torch device to train on ("cuda" on a GPU machine)
    progress: bool = True  # a progress bar on stderr
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"pretrain: steps={self.steps} and batch_size={self.batch_size} must be >= 1")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"pretrain: val_fraction={self.val_fraction} must be in [0, 1)")


@dataclass
class PretrainResult:
    """What a pretraining run produced."""

    policy_dir: Path
    steps: int
    train_loss: float  # mean over the last 50 steps
    val_loss: float  # last validation (NaN without a validation split)
    train_episodes: int
    val_episodes: int


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


class SubgoalAux(torch.nn.Module):
    """The subgoal read-out with the normalisation of its targets (from the training data)."""

    def __init__(self, width: int, targets: np.ndarray) -> None:
        super().__init__()
        self.head = SubgoalHead(width, targets.shape[1])
        self.register_buffer("mean", torch.from_numpy(targets.mean(0)))
        self.register_buffer("std", torch.from_numpy(targets.std(0) + 1e-3))

    def loss(self, prefix: Prefix, subgoal: np.ndarray, keep: np.ndarray | None = None) -> torch.Tensor:
        """MSE in normalised units over the samples ``keep`` (bool [B]; all if None)."""
        target = (torch.from_numpy(subgoal).to(self.mean.device) - self.mean) / self.std
        err = (self.head(prefix) - target).pow(2).mean(-1)
        if keep is None:
            return err.mean()
        m = torch.from_numpy(keep).to(err.device, err.dtype)
        return (err * m).sum() / m.sum().clamp(min=1.0)


def batch_losses(
    vla: VLA,
    batch: ChunkBatch,
    aux: SubgoalAux | None = None,
    generator: torch.Generator | None = None,
    first_steps: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean flow-matching loss of a chunk batch (padding past episode ends masked), and the
    subgoal loss when ``aux`` is given."""
    prefix = vla.encode(ObsBatch(batch.images, batch.state, batch.instructions))
    per_sample = vla.flow_loss(
        prefix,
        batch.state,
        batch.actions,
        action_mask=torch.from_numpy(batch.action_mask),
        generator=generator,
    )
    if aux is None:
        return per_sample.mean(), None
    if batch.subgoal is None:
        raise ValueError("pretrain: the subgoal loss needs a ChunkDataset built with a SubgoalSpec")
    keep = batch.t < first_steps if first_steps > 0 else None
    return per_sample.mean(), aux.loss(prefix, batch.subgoal, keep)


def batch_loss(vla: VLA, batch: ChunkBatch, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean flow-matching loss of a chunk batch."""
    return batch_losses(vla, batch, None, generator)[0]


def _policy_config_for(cfg: PolicyConfig, data: ChunkDataset) -> PolicyConfig:
    """Fill the data's dims into the policy config; refuse a config that contradicts the data."""
    for name, have in (("state_dim", data.state_dim), ("action_dim", data.action_dim)):
        want = getattr(cfg, name)
        if want and want != have:
            raise ValueError(f"policy.{name}={want} but the demonstrations have {have}")
    if sorted(cfg.cameras) != sorted(data.cameras):
        raise ValueError(
            f"policy.cameras={list(cfg.cameras)} but the demonstrations have cameras {list(data.cameras)}"
        )
    return dataclasses.replace(cfg, state_dim=data.state_dim, action_dim=data.action_dim)


def pretrain(cfg: PretrainConfig) -> PretrainResult:
    """Run (or resume) imitation pretraining; see the module docstring."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    store = EpisodeStore.open(cfg.store, create=False)
    metas = [m for m in store.episodes(task=cfg.task or None) if m.outcome == "success"]
    if not metas:
        raise ValueError(
            f"{cfg.store}: no successful episodes{f' of task {cfg.task!r}' if cfg.task else ''} to imitate"
        )
    episodes = [store.read_episode(m.episode_id) for m in metas]
    train_eps, val_eps = split_by_episode(episodes, cfg.val_fraction, cfg.seed)
    policy_cfg = cfg.policy
    spec = cfg.subgoal.spec()
    train = ChunkDataset(train_eps, policy_cfg.horizon, spec)
    val = ChunkDataset(val_eps, policy_cfg.horizon, spec) if val_eps else None
    log.info(
        "pretrain: %d train / %d val episodes, %d train steps of data",
        len(train_eps),
        len(val_eps),
        len(train),
    )

    last = out / "checkpoints" / "last"
    resuming = cfg.resume and (last / "config.json").exists()
    torch.manual_seed(cfg.seed)
    if resuming:
        vla = load_checkpoint(last, device=cfg.device)
    else:
        vla = VLA(_policy_config_for(policy_cfg, train))
        vla.set_norm_stats(
            NormStats.of(vla.select_state(train.all_states())), NormStats.of(train.all_actions())
        )
        vla.to(cfg.device)
    aux = None
    if train.subgoals is not None:
        aux = SubgoalAux(vla.backbone.width, np.concatenate(train.subgoals)).to(cfg.device)
        if resuming and (last / AUX_FILE).exists():
            aux.load_state_dict(load_file(last / AUX_FILE, device=cfg.device))
    params = list(vla.parameters()) + (list(aux.parameters()) if aux is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    start = 0
    if resuming:
        meta = load_training_state(last, opt)
        start = int(meta["step"])
        rng.bit_generator.state = meta["numpy_rng"]
        log.info("pretrain: resumed from %s at step %d", last, start)

    metrics = MetricsLogger(cfg.logger, out, "pretrain", dataclasses.asdict(cfg))
    losses: list[float] = []
    val_loss = float("nan")
    bar = tqdm(total=cfg.steps, initial=start, desc="pretrain", disable=not cfg.progress, dynamic_ncols=True)
    try:
        for step in range(start, cfg.steps):
            vla.train()
            lr = _lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            loss, sub_loss = batch_losses(
                vla, train.sample(cfg.batch_size, rng), aux, first_steps=cfg.subgoal.first_steps
            )
            total = loss if sub_loss is None else loss + cfg.subgoal.weight * sub_loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            losses.append(loss.item())
            done = step + 1
            row = {"pretrain/loss": losses[-1], "pretrain/lr": lr, "pretrain/grad_norm": float(grad_norm)}
            if sub_loss is not None:
                row["pretrain/subgoal_loss"] = sub_loss.item()
            if val is not None and (done % cfg.val_every == 0 or done == cfg.steps):
                val_loss = validate(vla, val, cfg)
                row["pretrain/val_loss"] = val_loss
            metrics.log(row, done)
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", val=f"{val_loss:.4f}")
            if done % cfg.ckpt_every == 0 or done == cfg.steps:
                _save(vla, opt, last, done, rng, aux)
    finally:
        bar.close()
        metrics.close()
    policy_dir = save_checkpoint(
        vla, out / "policy", extra={"step": cfg.steps, "source_store": str(cfg.store)}
    )
    return PretrainResult(
        policy_dir=policy_dir,
        steps=cfg.steps,
        train_loss=float(np.mean(losses[-50:])) if losses else float("nan"),
        val_loss=val_loss,
        train_episodes=len(train_eps),
        val_episodes=len(val_eps),
    )


def validate(vla: VLA, val: ChunkDataset, cfg: PretrainConfig) -> float:
    """Validation loss on fixed batches with fixed noise, so values are comparable across steps."""
    vla.eval()
    rng = np.random.default_rng(12345)
    gen = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        vals = [batch_loss(vla, val.sample(cfg.batch_size, rng), gen).item() for _ in range(cfg.val_batches)]
    return float(np.mean(vals))


def _save(
    vla: VLA,
    opt: torch.optim.Optimizer,
    path: Path,
    step: int,
    rng: np.random.Generator,
    aux: SubgoalAux | None = None,
) -> None:
    def write_more(d: Path) -> None:
        save_training_state(d, opt, {"step": step, "numpy_rng": rng.bit_generator.state})
        if aux is not None:
            save_file({k: v.contiguous() for k, v in aux.state_dict().items()}, d / AUX_FILE)

    save_checkpoint(vla, path, extra={"step": step}, write_more=write_more)
