"""Expert policies that make datasets: trained online by stable-baselines3's SAC, shipped as safetensors.

Training (`train_expert`, behind `dfplan expert train`) needs the `expert` extra (stable-baselines3);
running a shipped expert (`ExpertActor`) needs numpy and safetensors only. SB3's own saves (a zip and a
replay buffer, both pickle) stay in the training folder so that an interrupted run resumes; what ships
is the deterministic actor's tensors (`actor.safetensors`), exported at every save.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from dfplanner.errors import DfplannerError
from dfplanner.utils.atomic import atomic_output

MODEL_FILE = "sac.zip"  # SB3's save: resumable, pickle, never shipped
BUFFER_FILE = "replay.pkl"
ACTOR_FILE = "actor.safetensors"
CURVE_FILE = "curve.csv"
CURVE_SEED_OFFSET = 10_000  # the curve's evaluation at step s uses seed offset + s: episodes no other row reuses


@dataclass(frozen=True)
class SacRecipe:
    """SAC's settings. The defaults are OGBench's ant expert (impls/agents/sac.py, data_gen_scripts/
    commands.sh): 400k env steps, one update per step, 256x256 networks, lr 1e-4, target entropy
    -dim(A) / 2, 10k random steps first."""

    steps: int = 400_000
    learning_rate: float = 1e-4
    batch_size: int = 256
    hidden: tuple[int, ...] = (256, 256)
    discount: float = 0.99
    tau: float = 0.005
    entropy_per_action_dim: float = -0.5
    random_steps: int = 10_000
    save_every: int = 20_000  # env steps between resumable saves, an evaluation and an actor export
    eval_episodes: int = 5


class ExpertActor:
    """SAC's deterministic action (tanh of the Gaussian's mean) in numpy, from an exported actor."""

    def __init__(self, path: str | Path):
        try:
            tensors = load_file(str(path))
        except Exception as error:  # a missing, truncated or foreign file
            raise DfplannerError(f"cannot read expert {path}: {error}") from None
        count = sum(1 for key in tensors if key.startswith("hidden."))
        self.layers = [(tensors[f"hidden.{i}.weight"], tensors[f"hidden.{i}.bias"]) for i in range(count // 2)]
        self.mean = (tensors["mean.weight"], tensors["mean.bias"])

    @property
    def obs_dim(self) -> int:
        return self.layers[0][0].shape[1]

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        """(B, obs_dim) or (obs_dim,) -> actions in [-1, 1]."""
        x = np.asarray(observations, dtype=np.float32)
        for weight, bias in self.layers:
            x = np.maximum(x @ weight.T + bias, 0.0)
        return np.tanh(x @ self.mean[0].T + self.mean[1])


def export_actor(model, path: Path) -> None:
    """The SB3 SAC actor's deterministic part (its MLP and mean head) as safetensors."""
    linears = [m for m in model.actor.latent_pi if hasattr(m, "weight")]
    tensors = {}
    for i, layer in enumerate(linears):
        tensors[f"hidden.{i}.weight"] = layer.weight.detach().cpu().numpy()
        tensors[f"hidden.{i}.bias"] = layer.bias.detach().cpu().numpy()
    tensors["mean.weight"] = model.actor.mu.weight.detach().cpu().numpy()
    tensors["mean.bias"] = model.actor.mu.bias.detach().cpu().numpy()
    with atomic_output(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))


def evaluate_actor(actor: Callable[[np.ndarray], np.ndarray], make_env: Callable[[], gym.Env], episodes: int, seed: int) -> dict:
    """Mean return, episode length and return per second (speed along the task) of deterministic episodes.

    OGBench's wrappers draw their directions from the global `np.random`, which is seeded here too, so
    that the same seed gives the same episodes."""
    from dfplanner.envs.ogbench import numpy_global_seed

    env = make_env()
    returns, lengths = [], []
    with numpy_global_seed(seed):
        for episode in range(episodes):
            observation, _ = env.reset(seed=seed + episode)
            total, steps, done = 0.0, 0, False
            while not done:
                observation, reward, terminated, truncated, _ = env.step(actor(observation))
                total, steps, done = total + float(reward), steps + 1, terminated or truncated
            returns.append(total)
            lengths.append(steps)
    seconds = float(np.mean(lengths)) * env.unwrapped.dt
    env.close()
    return {"return": float(np.mean(returns)), "length": float(np.mean(lengths)), "speed": float(np.mean(returns)) / seconds}


def _import_sb3():
    try:
        import stable_baselines3
    except ImportError:
        raise DfplannerError("training an expert needs stable-baselines3: pip install -e '.[expert]'") from None
    return stable_baselines3


def _new_model(env: gym.Env, recipe: SacRecipe, seed: int):
    sb3 = _import_sb3()
    return sb3.SAC(
        "MlpPolicy", env, learning_rate=recipe.learning_rate, buffer_size=recipe.steps, learning_starts=recipe.random_steps,
        batch_size=recipe.batch_size, tau=recipe.tau, gamma=recipe.discount, train_freq=1, gradient_steps=1,
        target_entropy=recipe.entropy_per_action_dim * env.action_space.shape[0],
        policy_kwargs={"net_arch": list(recipe.hidden)}, seed=seed, device="cpu",
    )


def _save(model, out: Path, curve_row: dict) -> None:
    """A resumable state (model and replay buffer, each replaced atomically), the actor export and a curve row."""
    with atomic_output(out / MODEL_FILE) as tmp:
        model.save(tmp.with_suffix(".zip"))
        tmp.with_suffix(".zip").replace(tmp)
    with atomic_output(out / BUFFER_FILE) as tmp:
        model.save_replay_buffer(tmp.with_suffix(".pkl"))
        tmp.with_suffix(".pkl").replace(tmp)
    export_actor(model, out / ACTOR_FILE)
    curve = out / CURVE_FILE
    new = not curve.exists()
    with open(curve, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(curve_row))
        if new:
            writer.writeheader()
        writer.writerow(curve_row)


def train_expert(make_env: Callable[[], gym.Env], out: str | Path, recipe: SacRecipe = SacRecipe(), seed: int = 0,
                 progress: bool = True) -> Path:
    """Train (or resume, if `out` holds a run) a SAC expert; returns the exported actor's path.

    Every `recipe.save_every` env steps: a resumable save, a deterministic evaluation (its return and
    speed go to curve.csv) and the actor exported, so an interrupted run loses at most that many steps."""
    import torch

    sb3 = _import_sb3()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # SB3's small networks run fastest on one thread; the other core stays free
    env = make_env()
    recorded, wanted = out / "recipe.json", {**asdict(recipe), "hidden": list(recipe.hidden), "seed": seed}
    if (out / MODEL_FILE).exists():
        done = json.loads(recorded.read_text())
        if {**done, "steps": None} != {**wanted, "steps": None}:
            raise DfplannerError(f"{out} holds an expert trained with another recipe ({recorded}); choose another folder")
        model = sb3.SAC.load(out / MODEL_FILE, env=env, device="cpu")
        model.load_replay_buffer(out / BUFFER_FILE)
    else:
        np.random.seed(seed)  # OGBench's wrappers draw their directions from the global generator
        model = _new_model(env, recipe, seed)
    recorded.write_text(json.dumps(wanted) + "\n")  # a larger `steps` extends the run
    start = time.perf_counter()
    with tqdm(total=recipe.steps, initial=model.num_timesteps, unit="step", desc="SAC expert", disable=not progress) as bar:
        while model.num_timesteps < recipe.steps:
            chunk = min(recipe.save_every - model.num_timesteps % recipe.save_every, recipe.steps - model.num_timesteps)
            before = model.num_timesteps
            model.learn(total_timesteps=chunk, reset_num_timesteps=False, progress_bar=False)
            bar.update(model.num_timesteps - before)
            actor = lambda o: model.predict(o, deterministic=True)[0]  # noqa: E731
            scores = evaluate_actor(actor, make_env, recipe.eval_episodes, seed=CURVE_SEED_OFFSET + model.num_timesteps)
            bar.set_postfix(ret=f"{scores['return']:.1f}", speed=f"{scores['speed']:.2f}")
            _save(model, out, {"env_steps": model.num_timesteps, **scores, "seconds": round(time.perf_counter() - start, 1)})
    env.close()
    return out / ACTOR_FILE
