"""The ``dfplan`` command line: one function per subcommand, user errors as one line and exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dfplanner.errors import DfplannerError

if TYPE_CHECKING:
    from dfplanner.evaluation import EvalTask, Policy

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130  # 128 + SIGINT, the shell convention
DEFAULT_EVAL_ENV = "maze2d-large"
DEFAULT_POLICY = "planner"
# Planner settings that `dfplan eval` can override: flag dest -> PlannerSettings / SamplerSettings field
PLANNER_OVERRIDES = {
    "guidance_scale": "guidance_scale",
    "mcg_samples": "mcg_samples",
    "candidates": "candidates",
    "guidance_gradient": "guidance_gradient",
    "schedule": "schedule",
    "uncertainty": "uncertainty",
    "sampling_steps": "steps",
    "horizon": "horizon",
    "replan_every": "replan_every",
    "action_mode": "action_mode",
    "stabilization_level": "stabilization_level",
    "context_tokens": "context_tokens",
    "rolling": "rolling",
}


def _oracle(args: argparse.Namespace, task: EvalTask) -> Policy:
    from dfplanner.evaluation import OraclePolicy

    return task.oracle() if task.oracle is not None else OraclePolicy(task.maze.env_id)


def _random(args: argparse.Namespace, task: EvalTask) -> Policy:
    from dfplanner.evaluation import RandomPolicy

    return RandomPolicy(seed=args.seed)


def _planner(args: argparse.Namespace, task: EvalTask) -> Policy:
    from dfplanner.pretrained import load_planner, shipped_checkpoint

    if task.maze is None and args.checkpoint is None:
        raise DfplannerError(f"no planner checkpoint is shipped for {task.name} yet; pass --checkpoint, or use --policy oracle or random")
    env_id = task.maze.env_id if task.maze is not None else task.name
    checkpoint = args.checkpoint or shipped_checkpoint(env_id)
    overrides = {field: getattr(args, dest) for dest, field in PLANNER_OVERRIDES.items()}
    return load_planner(checkpoint, env_id, device=args.device, seed=args.seed, episode_steps=task.steps, **overrides)


# --policy name -> factory(args, task) returning a batched Policy (see dfplanner.evaluation.Policy)
POLICIES: dict[str, Callable[[argparse.Namespace, "EvalTask"], "Policy"]] = {
    "planner": _planner,
    "oracle": _oracle,
    "random": _random,
}


def cmd_data_generate(args: argparse.Namespace) -> None:
    from dfplanner.envs.ogbench import is_pointmaze
    from dfplanner.generate import generate

    if is_pointmaze(args.env):
        return _generate_ogbench(args)
    if args.episodes is not None:
        raise DfplannerError("--episodes is for OGBench datasets; maze2d datasets take --steps")
    info = generate(args.env, steps=args.steps, seed=args.seed, out=args.out, minari_id=args.minari)
    print(f"wrote {info['path']}: {info['steps']} steps, {info['targets']} targets reached or timed out, "
          f"seed {info['seed']}, {info['seconds']:.1f} s")
    if info["minari_id"]:
        print(f"wrote Minari dataset {info['minari_id']}")


def _generate_ogbench(args: argparse.Namespace) -> None:
    """`dfplan data generate --env pointmaze-...`: OGBench's recipe and npz files (dfplanner.ogbench_generate)."""
    from dfplanner.ogbench_generate import generate

    if args.steps is not None or args.minari is not None:
        raise DfplannerError(f"--steps and --minari are for maze2d; {args.env} takes --episodes")
    info = generate(args.env, episodes=args.episodes, seed=args.seed, out=args.out)
    print(f"wrote {info['path']} ({info['episodes']} episodes, {info['steps']} steps) and {info['val_path']} "
          f"({info['val_episodes']} episodes), seed {info['seed']}, {info['seconds']:.1f} s")


def cmd_eval(args: argparse.Namespace) -> None:
    from dfplanner.atomic import atomic_output, check_writable
    from dfplanner.evaluation import eval_task, evaluate

    if args.episodes <= 0:
        raise DfplannerError(f"--episodes must be positive, got {args.episodes}")
    for path in (args.json, args.plot):
        if path:
            check_writable(path)  # before the run, not after it
    task = eval_task(args.env, args.multi_goal, args.task)
    if args.plot and task.maze is None:
        raise DfplannerError(f"--plot draws maze2d layouts; {task.name} is not one")
    policy = POLICIES[args.policy](args, task)
    result = evaluate(task, policy, args.episodes, seed=args.seed, batch_size=args.batch_size, keep_trajectories=bool(args.plot))
    if args.plot:
        _plot(args.plot, task, policy, result)
        print(f"wrote {args.plot}")
    result.pop("trajectories", None)
    if args.policy == "planner":
        result["planner"] = {"checkpoint": str(args.checkpoint or "shipped"), **policy.settings.to_dict()}
    print(format_summary(result))
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")


PLOTTED_EPISODES = 4


def _plot(path: str, task: EvalTask, policy, result: dict) -> None:
    """The last episodes of the run (those whose final plan the planner still holds)."""
    import numpy as np

    from dfplanner.plotting import plot_episodes

    count = min(PLOTTED_EPISODES, result["episodes"])
    plan = getattr(policy, "last_plan", None)
    plans = plan.observations[-count:, :, :2] if plan is not None and plan.observations is not None else None
    targets = np.array([episode["target"] for episode in result["per_episode"][-count:]])
    score = f"normalized {result['normalized_score_mean']:.1f}" if task.d4rl_scores else f"return {result['return_mean']:.1f}"
    title = f"{task.name} {result['policy']}: {score}, success {result['success_rate']:.0%}"
    plot_episodes(path, task.maze, result["trajectories"][-count:], targets, plans, title)


def cmd_plan(args: argparse.Namespace) -> None:
    from dfplanner.denoising import record_denoising
    from dfplanner.evaluation import eval_task
    from dfplanner.plotting import check_denoising_path, write_denoising

    if not args.fps > 0:
        raise DfplannerError(f"--fps must be positive, got {args.fps}")
    check_denoising_path(args.out)
    task = eval_task(args.env, args.multi_goal)
    planner = _planner(args, task)
    env = task.make_env()
    observation, info = env.reset(seed=args.seed)
    denoising = record_denoising(planner, observation, info["target"])
    write_denoising(args.out, task.maze, denoising, fps=args.fps)
    print(f"wrote {args.out}: {len(denoising.rows)} sampling rows of a {planner.settings.schedule} schedule over "
          f"{denoising.schedule.shape[1]} tokens, seed {args.seed}")


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from dfplanner.config import load_config
    from dfplanner.datasets import load_dataset
    from dfplanner.envs.layouts import resolve_env_id
    from dfplanner.generate import default_dataset_path, generate
    from dfplanner.training import Trainer, process_group

    if args.env is None and args.dataset is None:
        raise DfplannerError("give --env (a maze2d env) or --dataset (e.g. minari:ID), or both")
    env_id = resolve_env_id(args.env) if args.env else None
    overrides = {key: value for key, value in (("steps", args.steps), ("batch_size", args.batch_size),
                                               ("save_every", args.save_every)) if value is not None}
    for key, value in overrides.items():
        if value <= 0:
            raise DfplannerError(f"--{key.replace('_', '-')} must be positive, got {value}")
    source = args.dataset
    if source is None:
        source = default_dataset_path(env_id.removesuffix("-v1"))
        if not source.exists():
            print(f"no dataset given and {source} does not exist: generating it")
            generate(env_id)
    dataset = load_dataset(source)
    if env_id and dataset.env_id and dataset.env_id != env_id:
        raise DfplannerError(f"{source} was recorded in {dataset.env_id}, not {env_id}")
    env_id = env_id or dataset.env_id or None  # None: not a maze2d dataset; package default config
    if args.eval_every and env_id is None:
        raise DfplannerError(f"--eval-every runs maze2d episodes; {source} is not from a maze2d env")
    config = load_config(env_id.removesuffix("-v1") if env_id else None, args.config)
    config["training"].update(overrides)
    out = Path(args.out or f"runs/{env_id if args.env else _run_name(source)}")
    if (out / "train_state.json").exists() and not args.resume:
        raise DfplannerError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    torch.set_num_threads(args.threads or torch.get_num_threads())
    with process_group(args.device):
        trainer = Trainer(dataset, config, out, env_id=env_id, device=args.device)
        say = print if trainer.is_main else (lambda *_: None)  # under torchrun, rank 0 speaks for all
        if args.resume and trainer.resume():
            say(f"resuming {out} at step {trainer.step}")
        batch, world = config["training"]["batch_size"], trainer.world_size
        effective = f"batch {batch}" + (f" x {world} processes = {batch * world}" if world > 1 else "")
        say(f"training on {len(dataset)} steps from {source} (env {env_id or 'not a maze2d env'}); "
            f"{sum(p.numel() for p in trainer.model.parameters())} parameters; {effective}; checkpoints in {out}")
        evaluate = _training_evaluation(env_id, args.eval_episodes, args.device) if args.eval_every else None
        try:
            trainer.run(evaluate=evaluate, eval_every=args.eval_every)
        except KeyboardInterrupt:
            again = f"--env {args.env}" if args.env else f"--dataset {source}"
            saved = "nothing saved yet" if trainer.saved_step is None else f"step {trainer.saved_step} saved"
            say(f"stopped at step {trainer.step}, {saved}; resume with: dfplan train {again} --out {out} --resume")
            raise
    say(f"wrote {out / 'model.json'} and {out / 'model.safetensors'}")


def _run_name(source) -> str:
    """The default run folder name for a dataset: minari:ns/name-v0 -> ns-name-v0, a file or folder -> its stem."""
    text = str(source)
    return text.removeprefix("minari:").replace("/", "-") if text.startswith("minari:") else Path(text).stem


def _training_evaluation(env_id: str, episodes: int, device: str):
    """Periodic evaluation for TensorBoard: score, success, plans over the maze and one plan's denoising
    (the picture of `dfplan plan`)."""
    import numpy as np

    from dfplanner.envs.layouts import MAZES
    from dfplanner.evaluation import evaluate
    from dfplanner.planner import DiffusionForcingPlanner, PlannerSettings
    from dfplanner.denoising import record_denoising
    from dfplanner.plotting import denoising_figure, episodes_figure

    maze = MAZES[env_id]

    def run(trained) -> dict:
        settings = PlannerSettings.from_dict({**trained.metadata.get("planner", {}), "episode_steps": maze.max_episode_steps})
        planner = DiffusionForcingPlanner(trained, settings, device=device)
        result = evaluate(env_id, planner, episodes, seed=0, batch_size=episodes, progress=False, keep_trajectories=True)
        count = min(PLOTTED_EPISODES, episodes)
        targets = np.array([e["target"] for e in result["per_episode"][-count:]])
        plans = planner.last_plan.observations[-count:, :, :2]
        start = np.r_[result["trajectories"][-1, 0], 0.0, 0.0].astype(np.float32)  # the last episode's start, at rest
        return {
            "normalized_score": result["normalized_score_mean"],
            "success_rate": result["success_rate"],
            "plans": episodes_figure(maze, result["trajectories"][-count:], targets, plans),
            "denoising": denoising_figure(maze, record_denoising(planner, start, targets[-1])),
        }

    return run


def format_summary(result: dict) -> str:
    """A short human-readable table of an evaluate() result."""
    goal = "multi-goal" if result["multi_goal"] else "single-goal"
    if result["normalized_score_mean"] is None:
        score = "none: not D4RL's maze2d protocol, raw returns only"
    else:
        score = (f"{result['normalized_score_mean']:.1f} +- {result['normalized_score_sem']:.1f} (sem), "
                 f"std {result['normalized_score_std']:.1f}")
    rows = [
        ("env", f"{result['env']} ({goal}), {result['episodes']} episodes, seed {result['seed']}"),
        ("policy", result["policy"]),
        ("normalized score", score),
        ("return", f"{result['return_mean']:.1f} +- {result['return_std']:.1f} (std)"),
        ("success rate", f"{result['success_rate']:.2f}"),
        *([("per task", ", ".join(f"{k}: {v['success_rate']:.2f}" for k, v in result["per_task"].items()))]
          if "per_task" in result else []),
        ("first reach", f"{result['first_reach_mean']:.1f} steps"),
        ("decisions/s", f"{result['decisions_per_second']:.0f}"),
        ("wall time", f"{result['wall_time_s']:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfplan", description="Diffusion Forcing planning for D4RL maze2d.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="offline datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    generate = data_commands.add_parser("generate", help="generate a maze2d (D4RL's recipe) or OGBench PointMaze dataset")
    generate.add_argument("--env", required=True, help="maze2d-umaze, maze2d-medium, maze2d-large, or pointmaze-{medium,large,giant}-{navigate,stitch}-v0")
    generate.add_argument("--steps", type=int, default=None, help="maze2d; default: D4RL's size (1M / 2M / 4M)")
    generate.add_argument("--episodes", type=int, default=None, help="OGBench; default: its recipe (navigate 1000, giant 500, stitch 5000)")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--out", default=None, help="hdf5 path (maze2d; default: in $DFPLANNER_DATA or ~/.cache/dfplanner) "
                          "or npz path (OGBench; default: in $OGBENCH_DATA or ~/.ogbench/data)")
    generate.add_argument("--minari", default=None, metavar="ID", help="also write a Minari dataset with this id")
    generate.set_defaults(func=cmd_data_generate)

    evaluate = commands.add_parser("eval", help="evaluate a policy on D4RL's maze2d protocol")
    evaluate.add_argument("--env", default=DEFAULT_EVAL_ENV, help="a maze2d env, an OGBench pointmaze-{medium,large,giant}-{navigate,stitch}-v0 "
                          "(OGBench's protocol), or minari:ID: the env its PointMaze dataset recovers")
    evaluate.add_argument("--task", type=int, default=None, metavar="K", help="OGBench: only evaluation task K (1..5); default: all 5 in turn")
    evaluate.add_argument("--policy", choices=sorted(POLICIES), default=DEFAULT_POLICY)
    evaluate.add_argument("--episodes", type=int, default=20)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--multi-goal", action="store_true", help="random target per episode (Diffuser's Multi2D)")
    evaluate.add_argument("--batch-size", type=int, default=50, help="environments run in lockstep")
    evaluate.add_argument("--json", default=None, metavar="PATH", help="write the full result as JSON")
    evaluate.add_argument("--plot", default=None, metavar="PNG", help="draw the last episodes and their last plans")
    _add_planner_arguments(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    plan = commands.add_parser("plan", help="animate one plan being denoised under the scheduling matrix")
    plan.add_argument("--env", default=DEFAULT_EVAL_ENV)
    plan.add_argument("--out", required=True, metavar="GIF|PNG", help="an animated .gif, or a .png of a few rows")
    plan.add_argument("--seed", type=int, default=0, help="the episode's start (and target with --multi-goal)")
    plan.add_argument("--multi-goal", action="store_true", help="a random target")
    plan.add_argument("--fps", type=float, default=5.0, help="GIF frames (sampling rows) per second")
    _add_planner_arguments(plan)
    plan.set_defaults(func=cmd_plan)

    train = commands.add_parser("train", help="train a Diffusion Forcing planner")
    train.add_argument("--env", default=None, help="maze2d-umaze, maze2d-medium or maze2d-large (default: the dataset's)")
    train.add_argument("--dataset", default=None, help="hdf5 path, minari:ID, d4rl:ENV (default: the generated one)")
    train.add_argument("--out", default=None, help="run folder (default: runs/ENV, or runs/DATASET without --env)")
    train.add_argument("--config", default=None, help="TOML file overriding the environment's tuned config")
    train.add_argument("--steps", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--save-every", type=int, default=None)
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    train.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--eval-every", type=int, default=0, metavar="N",
                       help="evaluate the EMA planner every N steps for TensorBoard (off by default: it costs CPU time)")
    train.add_argument("--eval-episodes", type=int, default=4)
    train.set_defaults(func=cmd_train)
    return parser


def _add_planner_arguments(command: argparse.ArgumentParser) -> None:
    """The checkpoint, the device and the planner settings flags that `_planner` reads."""
    command.add_argument("--checkpoint", default=None, help="planner checkpoint (default: the shipped one)")
    command.add_argument("--device", default="auto", help="auto, cpu or cuda")
    planner = command.add_argument_group("planner overrides (default: the checkpoint's tuned settings)")
    planner.add_argument("--guidance-scale", type=float)
    planner.add_argument("--mcg-samples", type=int, help="Monte Carlo Guidance samples (1 = plain guidance)")
    planner.add_argument("--candidates", type=int, help="plans sampled per decision; the cheapest is kept")
    planner.add_argument("--guidance-gradient", choices=["plan", "model"], help="plan space or through the model")
    planner.add_argument("--schedule", choices=["pyramid", "full_sequence", "autoregressive", "trapezoid"])
    planner.add_argument("--uncertainty", type=float, help="pyramid slope (rows per token)")
    planner.add_argument("--sampling-steps", type=int, help="denoising steps per token")
    planner.add_argument("--horizon", type=int, help="tokens planned per decision")
    planner.add_argument("--replan-every", type=int, help="env steps between plans")
    planner.add_argument("--action-mode", choices=["pd", "diffused"])
    planner.add_argument("--stabilization-level", type=int)
    planner.add_argument("--context-tokens", type=int, help="executed tokens folded into the state")
    planner.add_argument("--rolling", action=argparse.BooleanOptionalAction, default=None,
                         help="continue the last plan (one denoising row per token) instead of starting from noise")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DfplannerError as error:
        message = " ".join(str(error).split("\n"))  # one line, even if a library's message had several
        print(f"dfplan: error: {message}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("dfplan: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
