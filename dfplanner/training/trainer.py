"""The training loop: sample windows, Diffusion Forcing loss, AdamW, EMA, checkpoints, resume.

Everything needed to continue a run exactly (weights, EMA, optimizer, data-order and noise RNG
states, step) is written every `save_every` steps: the tensors to `train_state-STEP.safetensors`,
then `train_state.json`, which names that file and is the commit point; the planner checkpoint (EMA
weights) to `model.*`. All atomically, so a run killed at any moment loses at most one interval.
Ctrl-C (or SIGTERM) finishes the current step, saves and stops; a second one stops at once.

Distributed (``torchrun --nproc_per_node=N ... dfplan train``, inside `process_group`): the model is
wrapped in DistributedDataParallel, each rank samples its own windows and noise (so the data is
sharded by RNG stream) with a batch of `batch_size` (effective batch: batch_size x N), and only rank 0
writes checkpoints, TensorBoard and the progress bar. Every rank resumes from the same `train_state`;
the per-rank RNG streams are not saved but re-derived from (seed, rank, step), so a resumed distributed
run is statistically, not bit-for-bit, the uninterrupted one. At the end the ranks compare sha256
digests of their weights, recorded in the checkpoint's metadata (``distributed``).

Determinism: the run trains under ``torch.use_deterministic_algorithms``, and every random draw comes
from the seeded data-order and noise streams, so two runs with the same data, config, seed, thread
count, torch build and machine give bit-identical weights (with several CPU threads, torch's default
kernels did not: their results varied from run to run in the last bits).
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from dfplanner.training.checkpoint import RUN_MODEL_STEM, TrainedModel, file_sha256, read_json, read_tensors, write_json, write_tensors
from dfplanner.data.datasets import OfflineDataset
from dfplanner.errors import DfplannerError
from dfplanner.diffusion.noise import NoiseSchedule
from dfplanner.diffusion.objective import EMA, diffusion_forcing_loss
from dfplanner.planning.routes import routes_for
from dfplanner.utils.device import resolve_device
from dfplanner.data.tokens import Normalizer, TokenLayout
from dfplanner.data.windows import WindowSampler

MODEL_STEM, STATE_STEM = RUN_MODEL_STEM, "train_state"


def learning_rate(step: int, settings: dict) -> float:
    """Linear warmup, then cosine decay to lr * min_lr_ratio at the last step."""
    lr, warmup, total = settings["lr"], settings["warmup"], settings["steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = settings["min_lr_ratio"]
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


class StopRequests:
    """While training, Ctrl-C (SIGINT) and SIGTERM only ask the loop to stop after the current step,
    so what is saved is always a whole step; a second signal acts as usual (it restores the old handler)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.previous = {}
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            self.previous = {sig: signal.signal(sig, self._request) for sig in self.SIGNALS}

    def _request(self, signum: int, frame) -> None:
        self.requested = True
        signal.signal(signum, self.previous[signum])

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


@contextmanager
def deterministic_kernels() -> Iterator[None]:
    """torch's deterministic kernels for the block (warn_only: an op without one warns, never fails)."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


@contextmanager
def process_group(device: str = "auto") -> Iterator[None]:
    """Under torchrun (WORLD_SIZE > 1) join the process group for the block: NCCL on CUDA, gloo on CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    dist.init_process_group("nccl" if resolve_device(device).type == "cuda" else "gloo")
    try:
        yield
        dist.barrier()  # no rank tears gloo down while another still talks: that aborted a rank at exit
    finally:
        dist.destroy_process_group()


class _Loss(nn.Module):
    """The training loss as one module, so that DistributedDataParallel sees every use of the weights."""

    def __init__(self, model: nn.Module, schedule: NoiseSchedule, weighting: str):
        super().__init__()
        self.model, self.schedule, self.weighting = model, schedule, weighting

    def forward(self, batch, generator: torch.Generator) -> torch.Tensor:
        return diffusion_forcing_loss(self.model, self.schedule, batch, self.weighting, generator)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only; biases and norm weights are exempt (as in nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


class Trainer:
    def __init__(self, dataset: OfflineDataset, config: dict, out_dir: Path, env_id: str | None = None, device: str = "auto"):
        self.config, self.out_dir, self.env_id = config, Path(out_dir), env_id
        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        self.is_main = self.rank == 0
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DfplannerError(f"cannot create run folder {self.out_dir}: {error.strerror}") from None
        self.device = resolve_device(device)
        torch.manual_seed(config["training"]["seed"])  # the weights' initialization too depends on the seed only
        if self.world_size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        tokens_cfg = config["tokens"]
        layout = TokenLayout(
            obs_dim=dataset.observations.shape[1],
            act_dim=dataset.actions.shape[1],
            frame_stack=tokens_cfg["frame_stack"],
            channels=tuple(tokens_cfg["channels"]),
            observation_deltas=tokens_cfg["observation_deltas"],
        )
        self.sampler = WindowSampler(
            dataset.observations, dataset.actions, dataset.rewards, dataset.episode_ends, layout,
            tokens=tokens_cfg["window"], cross_episodes=config["data"]["cross_episodes"] and dataset.continuous,
        )
        metadata = {"env_id": env_id, "dataset": dataset.source, "training_steps": 0, "planner": config["planner"], "window": tokens_cfg["window"]}
        self.trained = TrainedModel.create(config["model"], NoiseSchedule(**config["diffusion"]), layout, self.sampler.normalizer, metadata)
        self.trained.routes = routes_for(dataset, env_id)
        self.model = self.trained.model.to(self.device)
        settings = config["training"]
        self.loss = _Loss(self.model, self.trained.schedule, settings["loss_weighting"])
        if self.world_size > 1:  # broadcasts rank 0's initial weights, then averages gradients
            self.loss = DistributedDataParallel(self.loss, device_ids=[self.device] if self.device.type == "cuda" else None)
        self.ema = EMA(self.model, settings["ema_decay"])
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, settings["weight_decay"]), lr=settings["lr"])
        self._seed_streams(step=0)
        self.step = 0
        self.saved_step: int | None = None  # the step of the last complete checkpoint in out_dir

    def _seed_streams(self, step: int) -> None:
        """The data-order and noise RNGs: from the seed, or under torchrun from (seed, rank, step)."""
        seed = self.config["training"]["seed"]
        if self.world_size > 1:
            seed = int(np.random.SeedSequence([seed, self.rank, step]).generate_state(1)[0])
        self.rng = np.random.default_rng(seed)
        self.noise_generator = torch.Generator(self.device).manual_seed(seed)

    # ---- persistence ---------------------------------------------------------------------------
    def save(self) -> None:
        """Tensors under a new name first, then the JSON naming them: a kill between the two leaves
        the previous JSON pointing at the previous, still present, tensors. Rank 0 only: every rank
        holds the same weights."""
        if not self.is_main:
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors |= {f"ema.{k}": v for k, v in self.ema.model.state_dict().items()}
        optimizer = self.optimizer.state_dict()
        for index, state in optimizer["state"].items():
            tensors |= {f"optim.{index}.{k}": torch.as_tensor(v) for k, v in state.items()}
        tensors["rng.noise"] = self.noise_generator.get_state()
        tensors_name = f"{STATE_STEM}-{self.step:08d}.safetensors"
        write_tensors(self.out_dir / tensors_name, tensors)
        write_json(self.out_dir / f"{STATE_STEM}.json", {
            "step": self.step,
            "tensors": tensors_name,
            "tensors_sha256": file_sha256(self.out_dir / tensors_name),
            "param_groups": optimizer["param_groups"],
            "data_rng": self.rng.bit_generator.state,
            "normalizer": self.sampler.normalizer.to_dict(),
            "config": self.config,
        })
        for old in self.out_dir.glob(f"{STATE_STEM}*.safetensors"):
            if old.name != tensors_name:
                old.unlink()
        self.trained.metadata["training_steps"] = self.step
        self.trained.save(self.out_dir / MODEL_STEM, self.ema.model.state_dict())
        self.saved_step = self.step

    def resume(self) -> bool:
        """Continue from out_dir's training state if there is one; False if starting fresh."""
        state_json = self.out_dir / f"{STATE_STEM}.json"
        if not state_json.exists():
            return False
        meta = read_json(state_json)
        tensors_name = meta.get("tensors", f"{STATE_STEM}.safetensors")
        if not isinstance(tensors_name, str) or Path(tensors_name).name != tensors_name:
            raise DfplannerError(f"{state_json}: 'tensors' must name a file in {self.out_dir}, got {tensors_name!r}")
        tensors = read_tensors(self.out_dir / tensors_name, meta.get("tensors_sha256"), state_json.name)
        try:
            saved_norm = Normalizer.from_dict(meta["normalizer"])
            if saved_norm.step_mean.shape != self.sampler.normalizer.step_mean.shape or not np.allclose(
                saved_norm.step_mean, self.sampler.normalizer.step_mean, atol=1e-5
            ):
                raise DfplannerError(f"{state_json}: this run was trained on other data (its normalization statistics differ from the dataset's now)")
            self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            self.ema.model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
            optim_state: dict[int, dict] = {}
            for key, value in tensors.items():
                if key.startswith("optim."):
                    _, index, name = key.split(".", 2)
                    optim_state.setdefault(int(index), {})[name] = value
            self.optimizer.load_state_dict({"state": optim_state, "param_groups": meta["param_groups"]})
            self.step = self.saved_step = int(meta["step"])
            if self.world_size > 1:
                self._seed_streams(self.step)
            else:
                self.noise_generator.set_state(tensors["rng.noise"])
                self.rng.bit_generator.state = meta["data_rng"]
        except (KeyError, ValueError, TypeError, RuntimeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise DfplannerError(f"{state_json}: training state does not match this model and configuration ({first})") from None
        return True

    # ---- loop ------------------------------------------------------------------------------------
    def train_step(self) -> tuple[float, float]:
        settings = self.config["training"]
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, settings)
        batch = self.sampler.sample(settings["batch_size"], self.rng)
        batch.observations, batch.tokens, batch.mask = (t.to(self.device) for t in (batch.observations, batch.tokens, batch.mask))
        loss = self.loss(batch, self.noise_generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings["grad_clip"])
        self.optimizer.step()
        self.ema.update(self.model)
        self.step += 1
        return loss.item(), grad_norm.item()

    @deterministic_kernels()
    def run(self, steps: int | None = None, progress: bool = True, evaluate: Callable[[TrainedModel], dict] | None = None, eval_every: int = 0) -> TrainedModel:
        """Train up to `steps` total steps (the config's by default), logging to TensorBoard.

        Every `eval_every` steps, `evaluate(trained_with_ema_weights)` returns floats (scalars) and
        matplotlib figures (images) to log."""
        from torch.utils.tensorboard import SummaryWriter

        settings = self.config["training"]
        total = steps or settings["steps"]
        writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self.step) if self.is_main else None
        bar = tqdm(total=total, initial=self.step, disable=not (progress and self.is_main), desc="train", unit="step")
        window_start, window_steps = time.perf_counter(), 0
        stop = StopRequests()
        try:
            while self.step < total:
                loss, grad_norm = self.train_step()
                window_steps += 1
                bar.update(1)
                if writer is not None and (self.step % settings["log_every"] == 0 or self.step == total):
                    elapsed = time.perf_counter() - window_start
                    rate = window_steps * settings["batch_size"] * self.world_size / max(elapsed, 1e-9)
                    bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{rate:.0f}")
                    for name, value in (("loss", loss), ("grad_norm", grad_norm), ("samples_per_s", rate), ("lr", self.optimizer.param_groups[0]["lr"])):
                        writer.add_scalar(f"train/{name}", value, self.step)
                    window_start, window_steps = time.perf_counter(), 0
                if self.step % settings["save_every"] == 0 and self.step < total:
                    self.save()
                if evaluate is not None and eval_every and self.step % eval_every == 0 and self.is_main:
                    self.trained.model = self.ema.model
                    for name, value in evaluate(self.trained).items():
                        if isinstance(value, float):
                            writer.add_scalar(f"eval/{name}", value, self.step)
                        else:  # a matplotlib figure, e.g. plans over the maze
                            writer.add_figure(f"eval/{name}", value, self.step)
                    self.trained.model = self.model
                if stop.requested and self.step < total:
                    bar.write(f"interrupted: saving step {self.step} to {self.out_dir}")
                    self.save()
                    raise KeyboardInterrupt
        finally:
            stop.restore()
            bar.close()
            if writer is not None:
                writer.close()
        if self.world_size > 1:
            self._check_replicas()
        self.save()  # also records the current config's planner settings when resuming a finished run
        self.trained.model = self.ema.model
        return self.trained

    def _check_replicas(self) -> None:
        """Every rank's sha256 of its weights and EMA, recorded in the metadata; they must all agree."""
        digest = hashlib.sha256()
        for tensor in (*self.model.state_dict().values(), *self.ema.model.state_dict().values()):
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        digests: list[str | None] = [None] * self.world_size
        dist.all_gather_object(digests, digest.hexdigest())
        self.trained.metadata["distributed"] = {"world_size": self.world_size, "weights_sha256": digests}
        if self.is_main and len(set(digests)) > 1:
            warnings.warn(f"DDP replicas diverged: weight digests {digests}; the checkpoint holds rank 0's", stacklevel=2)
