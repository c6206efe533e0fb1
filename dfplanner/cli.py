"""The ``dfplan`` command line: one function per subcommand, user errors as one line and exit code 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dfplanner.errors import DfplannerError

if TYPE_CHECKING:
    from dfplanner.data.datasets import OfflineDataset
    from dfplanner.envs.family import EvalTask, Policy
    from dfplanner.training.runs import RunRecord

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130  # 128 + SIGINT, the shell convention
DEFAULT_EVAL_ENV = "maze2d-large"
DEFAULT_POLICY = "planner"
DEFAULT_DEVICE = "auto"
DEFAULT_PRECISION = "float32"
CHECKPOINT_POLICIES = ("bc",)  # policies besides the planner that load a checkpoint (--checkpoint, default: the shipped one)
BC_SETTINGS = ("route_lookahead", "route_traffic")  # the planner settings --policy bc reads too: where its subgoals lie


def _oracle(args: argparse.Namespace, task: EvalTask) -> Policy:
    return task.family.oracle(task.env_id)


def _random(args: argparse.Namespace, task: EvalTask) -> Policy:
    from dfplanner.evaluation.rollout import RandomPolicy

    return RandomPolicy(task.spaces[1], seed=args.seed)


def _checkpoint_of(args: argparse.Namespace, task: EvalTask):
    """--checkpoint, or the one shipped for the task's env."""
    from dfplanner.evaluation.pretrained import shipped_checkpoint

    if args.checkpoint is not None and not args.checkpoint.strip():
        raise DfplannerError("--checkpoint is empty; give a checkpoint path, or leave the flag out for the shipped one")
    return args.checkpoint or shipped_checkpoint(task.env_id)


def _planner(args: argparse.Namespace, task: EvalTask) -> Policy:
    from dfplanner.evaluation.pretrained import load_planner

    checkpoint = _checkpoint_of(args, task)
    overrides = {name: getattr(args, name) for name in planner_flags()}
    return load_planner(checkpoint, task.env_id, task.obs_dim, device=args.device, seed=args.seed, preset=args.preset,
                        allow_unverified=args.allow_unverified, precision=args.precision,
                        episode_steps=task.steps, **overrides)


def _bc(args: argparse.Namespace, task: EvalTask) -> Policy:
    from dfplanner.evaluation.bc import BCPolicy
    from dfplanner.evaluation.pretrained import load_checked
    from dfplanner.planning.settings import settings_for

    trained = load_checked(Path(_checkpoint_of(args, task)), task.env_id, task.obs_dim, args.allow_unverified)
    return BCPolicy(trained, settings_for(trained.metadata, **{name: getattr(args, name) for name in BC_SETTINGS}))


# --policy name -> factory(args, task) returning a batched Policy (see dfplanner.envs.family.Policy)
POLICIES: dict[str, Callable[[argparse.Namespace, "EvalTask"], "Policy"]] = {
    "planner": _planner,
    "bc": _bc,
    "oracle": _oracle,
    "random": _random,
}


def cmd_data_generate(args: argparse.Namespace) -> None:
    from dfplanner.envs import family_of

    family = family_of(args.env)
    print(family.generate(args.env, seed=args.seed, out=args.out, steps=args.steps, episodes=args.episodes, minari=args.minari))


def cmd_expert_train(args: argparse.Namespace) -> None:
    """`dfplan expert train --env ant`: the SAC expert a data recipe drives (dfplanner.data.sac_expert)."""
    from dfplanner.data.sac_expert import SacRecipe, train_expert
    from dfplanner.envs import EXPERTS

    if args.env not in EXPERTS:
        raise DfplannerError(f"no expert called {args.env!r}; experts: {', '.join(sorted(EXPERTS))}")
    for flag, value in (("--steps", args.steps), ("--save-every", args.save_every)):
        if value is not None and value <= 0:
            raise DfplannerError(f"{flag} must be positive, got {value}")
    recipe = SacRecipe()
    changes = {key: value for key, value in (("steps", args.steps), ("save_every", args.save_every)) if value is not None}
    recipe = dataclasses.replace(recipe, **changes)
    out = Path(args.out or f"runs/experts/{args.env}")
    actor = train_expert(EXPERTS[args.env], out, recipe, seed=args.seed)
    print(f"wrote {actor} (training curve: {out / 'curve.csv'}); ship it as results/experts/{args.env}.safetensors")


def cmd_head_train(args: argparse.Namespace) -> None:
    """`dfplan head train`: an action head fitted on a checkpoint's training data, saved beside it."""
    import torch

    from dfplanner.planning.action_head import HeadSpec, fit_action_head
    from dfplanner.planning.settings import settings_for
    from dfplanner.training.checkpoint import checkpoint_paths, head_path, load_trained_model, save_head

    json_path, _ = checkpoint_paths(Path(args.checkpoint))
    trained = load_trained_model(json_path, allow_unverified=args.allow_unverified)
    settings = settings_for(trained.metadata)
    _, dataset = _train_dataset(args.dataset or trained.metadata.get("dataset"), trained.metadata.get("env_id"))
    if args.kind == "inverse":  # the state the planner's action aims at: track_ahead steps past the next one
        dims, low, high = tuple(range(trained.layout.obs_dim)), settings.track_ahead + 1, settings.track_ahead + 1
    else:  # hindsight positions up to twice as far along as the planner's route subgoals
        dims, low, high = settings.position_dims, 1, max(1, 2 * settings.route_lookahead)
    if not dims:
        raise DfplannerError(f"{json_path}: its env gives no position dims to aim a bc head at")
    spec = HeadSpec(args.kind, dims, args.ahead_min or low, args.ahead_max or max(high, args.ahead_min or low),
                    action_limit=settings.action_limit)
    torch.set_num_threads(1)  # a small MLP: one thread is fastest, and leaves the other core to other work
    save_head(json_path, fit_action_head(dataset, spec, steps=args.steps, seed=args.seed))
    print(f"wrote {head_path(json_path, args.kind)}: {args.kind} head on {len(dataset)} steps, targets {spec.ahead_min}-"
          f"{spec.ahead_max} steps ahead, recorded in {json_path.name}")


def cmd_eval(args: argparse.Namespace) -> None:
    from dfplanner.utils.atomic import atomic_output, check_writable
    from dfplanner.evaluation.rollout import eval_task, evaluate

    _check_policy_flags(args)
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise DfplannerError(f"--plot {args.plot}: the picture is a PNG; use a .png file name")
    for path in (args.json, args.plot):
        if path:
            check_writable(path)  # before the run, not after it
    task = eval_task(args.env, args.multi_goal, args.task)
    trajectories = 0
    if args.plot:
        from dfplanner.evaluation.plotting import PLOTTED_EPISODES, layout_of

        layout_of(task)  # a task without a maze to draw fails here, before the run
        trajectories = PLOTTED_EPISODES
    if args.video:
        from dfplanner.evaluation.video import recording

        task = recording(task, args.video)
    policy = POLICIES[args.policy](args, task)
    result = evaluate(task, policy, args.episodes, seed=args.seed, batch_size=args.batch_size, trajectories=trajectories)
    trajectories = result.pop("trajectories", None)
    if args.policy == "planner":
        result["planner"] = {"checkpoint": str(args.checkpoint or "shipped"), "preset": args.preset,
                             **policy.settings.to_dict(), "replan_every": policy.replan_every}
    if args.policy == "bc":
        result["bc"] = {"checkpoint": str(args.checkpoint or "shipped"), "route_lookahead": policy.lookahead, "route_traffic": policy.traffic}
    print(format_summary(result))  # the results first: nothing written after them can lose them
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        from dfplanner.evaluation.plotting import plot_run

        plot_run(args.plot, task, policy, {**result, "trajectories": trajectories})
        print(f"wrote {args.plot}")
    if args.video:
        from dfplanner.evaluation.video import videos_in

        videos = videos_in(args.video, task)
        if not videos:
            raise DfplannerError(f"--video {args.video}: no episode was recorded")
        print(f"wrote {len(videos)} episodes of the first environment to {args.video} ({videos[0].name}, ...)")


def _check_policy_flags(args: argparse.Namespace) -> None:
    """Planner flags with a policy that is not the planner would be ignored: an error instead."""
    if args.policy == "planner":
        return
    checkpointed = args.policy in CHECKPOINT_POLICIES  # these read --checkpoint, and may be trusted without a digest
    read = BC_SETTINGS if args.policy == "bc" else ()
    given = [dest for dest in ("preset", *planner_flags(), *(() if checkpointed else ("checkpoint",)))
             if getattr(args, dest) is not None and dest not in read]
    given += ["device"] if args.device != DEFAULT_DEVICE else []
    given += ["allow_unverified"] if args.allow_unverified and not checkpointed else []
    given += ["precision"] if args.precision != DEFAULT_PRECISION else []
    if given:
        flags = ", ".join(f"--{dest.replace('_', '-')}" for dest in given)
        raise DfplannerError(f"--policy {args.policy} does not use {flags}; drop them (they are for --policy planner)")


def cmd_plan(args: argparse.Namespace) -> None:
    from dfplanner.evaluation.denoising import record_denoising
    from dfplanner.evaluation.rollout import eval_task
    from dfplanner.evaluation.plotting import check_denoising_path, layout_of, write_denoising

    if not args.fps > 0:
        raise DfplannerError(f"--fps must be positive, got {args.fps}")
    check_denoising_path(args.out)
    task = eval_task(args.env, args.multi_goal)
    layout = layout_of(task)  # a task without a maze to draw fails here, before planning
    planner = _planner(args, task)
    env = task.make_env()
    observation, info = env.reset(seed=args.seed)
    denoising = record_denoising(planner, observation, info["target"])
    write_denoising(args.out, layout, denoising, fps=args.fps)
    print(f"wrote {args.out}: {len(denoising.rows)} sampling rows of a {planner.settings.schedule} schedule over "
          f"{denoising.schedule.shape[1]} tokens, seed {args.seed}, preset {args.preset}")


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from dfplanner.training.runs import owned_by_this_process, removed_on_failure
    from dfplanner.utils.device import resolve_device

    resolve_device(args.device)  # an unusable device fails here, before any work
    out = _train_folder(args)
    with removed_on_failure(out), owned_by_this_process(out):
        record, dataset = _resumed_run(args, out) if args.resume else _new_run(args, out)
        torch.set_num_threads(record.threads)
        _train(args, out, record, dataset)


def _train(args: argparse.Namespace, out: Path, record: RunRecord, dataset: OfflineDataset) -> None:
    from dfplanner.evaluation.rollout import training_evaluation
    from dfplanner.training.trainer import Trainer, process_group

    with process_group(args.device):
        trainer = Trainer(dataset, record.config, out, env_id=record.env_id, device=args.device)
        say = print if trainer.is_main else (lambda *_: None)  # under torchrun, rank 0 speaks for all
        if args.resume and trainer.resume():
            say(f"resuming {out} at step {trainer.step} of {record.config['training']['steps']}")
        if trainer.is_main:
            record.write(out)  # a new run's record, or a resumed one's with its extended steps
        batch, world = record.config["training"]["batch_size"], trainer.world_size
        effective = f"batch {batch}" + (f" x {world} processes = {batch * world}" if world > 1 else "")
        say(f"training on {len(dataset)} steps from {record.dataset} (env {record.env_id or 'not named by the data'}); "
            f"{sum(p.numel() for p in trainer.model.parameters())} parameters; {effective}; checkpoints in {out}")
        say(f"follow it with: tensorboard --logdir {out / 'tensorboard'}")
        evaluate = training_evaluation(record.env_id, record.eval_episodes, args.device) if record.eval_every else None
        try:
            trainer.run(evaluate=evaluate, eval_every=record.eval_every)
        except KeyboardInterrupt:
            saved = "nothing saved yet" if trainer.saved_step is None else f"step {trainer.saved_step} saved"
            say(f"stopped at step {trainer.step}, {saved}; resume with: dfplan train --out {out} --resume")
            raise
    say(f"wrote {out / 'model.json'} and {out / 'model.safetensors'}")


DEFAULT_DATA_SEED = 0  # `dfplan train` without --dataset makes the default file, as `dfplan data generate` does
TRAIN_OVERRIDES = ("steps", "batch_size", "save_every")  # flags that override [training] keys
NO_DATA = "give --env (an env whose data dfplan makes, e.g. maze2d-large) or --dataset (e.g. minari:ID, ogbench:NAME, FILE.npz), or both"
DEFAULT_EVAL_EPISODES = 4


def _train_folder(args: argparse.Namespace) -> Path:
    """--out, or runs/ENV (runs/DATASET without --env)."""
    from dfplanner.envs import resolve_env

    if args.out:
        return Path(args.out)
    if args.env is None and args.dataset is None:
        raise DfplannerError(NO_DATA + ("; or --out RUN to resume that run" if args.resume else ""))
    return Path(f"runs/{resolve_env(args.env) if args.env else _run_name(args.dataset)}")


def _config_name(env_id: str | None) -> str | None:
    """The tuned config file's name for an env id (its family says: maze2d-large-v1 -> maze2d-large)."""
    from dfplanner.envs import family_of

    return family_of(env_id).config_name(env_id) if env_id else None


def _new_run(args: argparse.Namespace, out: Path) -> tuple[RunRecord, OfflineDataset]:
    """What a new run trains on, checked completely before any data is generated or any step taken."""
    import torch

    from dfplanner.envs import is_known, resolve_env
    from dfplanner.training.config import load_config
    from dfplanner.training.runs import RunRecord, dataset_source, holds_run

    if args.env is None and args.dataset is None:
        raise DfplannerError(NO_DATA)
    if holds_run(out):
        raise DfplannerError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    env_id = resolve_env(args.env) if args.env else None
    load_config(_config_name(env_id), args.config)  # a bad config file stops here, before data is generated
    source, dataset = _train_dataset(args.dataset, env_id)
    env_id = env_id or dataset.env_id
    if not is_known(env_id):
        named = f"names {env_id!r}, which no env family here knows" if env_id else "names no env"
        raise DfplannerError(f"{source} {named}: pass --env ENV, the env it was recorded in, so that its actions are checked "
                             "against that env's action space and `dfplan eval` can plan with the checkpoint")
    config = load_config(_config_name(env_id), args.config)
    config["training"].update({key: getattr(args, key) for key in TRAIN_OVERRIDES if getattr(args, key) is not None})
    record = RunRecord(dataset_source(source), env_id, config, args.threads or torch.get_num_threads(),
                       args.eval_every or 0, args.eval_episodes or DEFAULT_EVAL_EPISODES)
    return record, dataset


def _resumed_run(args: argparse.Namespace, out: Path) -> tuple[RunRecord, OfflineDataset]:
    """The run recorded in `out`; any flag given that contradicts it is an error, except a larger
    --steps, which extends the run (its learning-rate schedule then ends at the new last step)."""
    import dataclasses

    from dfplanner.training.config import first_difference, merge, read_toml, validate
    from dfplanner.envs import resolve_env
    from dfplanner.training.runs import RunRecord, dataset_source

    record = RunRecord.read(out)
    given = {key: getattr(args, key) for key in TRAIN_OVERRIDES}
    if given["steps"] is not None and given["steps"] > record.config["training"]["steps"]:  # asked to extend the run
        record = dataclasses.replace(record, config=merge(record.config, {"training": {"steps": given.pop("steps")}}))
    training = record.config["training"]
    record.check_flags({
        "--env": (resolve_env(args.env) if args.env else None, record.env_id),
        "--dataset": (dataset_source(args.dataset) if args.dataset else None, record.dataset),
        **{f"--{key.replace('_', '-')}": (value, training[key]) for key, value in given.items()},
        "--threads": (args.threads, record.threads),
        "--eval-every": (args.eval_every, record.eval_every),
        "--eval-episodes": (args.eval_episodes, record.eval_episodes),
    }, out)
    if args.config:
        layer = read_toml(Path(args.config))
        validate(layer, args.config)
        difference = first_difference(layer, record.config)
        if difference:
            raise DfplannerError(f"--config {args.config} contradicts the run in {out}: it sets {difference}; resume without --config")
    _, dataset = _train_dataset(record.dataset, record.env_id)
    return record, dataset


def _train_dataset(source: str | Path | None, env_id: str | None) -> tuple[str | Path, OfflineDataset]:
    """(source, dataset): the given one, or the maze's default one (generated if missing); its env and
    its observation and action widths must be those of `env_id` (or of the env it was recorded in)."""
    from dfplanner.data.datasets import load_dataset
    from dfplanner.data.offline import check_action_range
    from dfplanner.envs import family_of, is_known
    from dfplanner.evaluation.rollout import eval_task

    if source is None:
        family = family_of(env_id)
        source = family.default_dataset(env_id)
        if source is None:
            raise DfplannerError(f"dfplan makes no data for {env_id}; give --dataset")
        if not source.exists():
            print(f"no dataset given and {source} does not exist: generating it")
            print(family.generate(env_id, seed=DEFAULT_DATA_SEED, out=None))
    dataset = load_dataset(source)
    if env_id and dataset.env_id and dataset.env_id != env_id:
        raise DfplannerError(f"{source} was recorded in {dataset.env_id}, not {env_id}")
    env = env_id or dataset.env_id
    if env and (env_id or is_known(env)):  # a file may name an env unknown here: then nothing to check
        spaces = eval_task(env).spaces
        widths = (dataset.observations.shape[1], dataset.actions.shape[1])
        expected = (spaces[0].shape[0], spaces[1].shape[0])
        if widths != expected:
            raise DfplannerError(f"{source}: observations and actions have {widths[0]} and {widths[1]} columns; "
                                 f"{env} has {expected[0]} and {expected[1]}")
        check_action_range(dataset.actions, env, str(source))  # the loader checked it only if the file named its env
    return source, dataset


def cmd_routes(args: argparse.Namespace) -> None:
    """Write a checkpoint's routes (dfplanner.planning.routes) from its training data, e.g. for one trained before routes existed."""
    from dfplanner.planning.routes import routes_for, routes_path
    from dfplanner.training.checkpoint import checkpoint_paths, read_json, record_digest

    json_path, _ = checkpoint_paths(Path(args.checkpoint))
    env_id = read_json(json_path).get("env_id")
    source, dataset = _train_dataset(args.dataset or read_json(json_path).get("dataset"), env_id)
    routes = routes_for(dataset, env_id)
    if routes is None:
        raise DfplannerError(f"{json_path}: {env_id or 'its env'} has no positions to route between (routes are for mazes)")
    routes.save(routes_path(json_path))
    record_digest(json_path)
    print(f"wrote {routes_path(json_path)}: {len(routes.nodes)} cells from {source} (median step {routes.step:.3g}), "
          f"{len(routes.sources)} recorded links between them")


def cmd_config_show(args: argparse.Namespace) -> None:
    from dfplanner.envs import resolve_env
    from dfplanner.training.config import load_config, to_toml
    from dfplanner.training.runs import RunRecord

    if args.run and (args.env or args.config):
        raise DfplannerError("--run prints the config that run was started with; give --env and --config without it")
    if args.run:
        record = RunRecord.read(Path(args.run))
        config, env_id, checkpoint = record.config, record.env_id, Path(args.run) / "model.json"
    else:
        env_id = resolve_env(args.env) if args.env else None
        config = load_config(_config_name(env_id), args.config)
        checkpoint = _shipped_json(env_id) if env_id and not args.config else None
    print(to_toml(config), end="")
    print(_planner_settings_text(config, env_id, checkpoint if checkpoint and checkpoint.exists() else None), end="")


def _shipped_json(env_id: str) -> Path:
    from dfplanner.evaluation.pretrained import SHIPPED_DIR

    return SHIPPED_DIR / f"{env_id}.json"


def _planner_settings_text(config: dict, env_id: str | None, checkpoint: Path | None) -> str:
    """Every planner setting `dfplan eval` acts with, as TOML comments, each with the layer it comes from."""
    import dataclasses

    from dfplanner.envs import family_of, is_known
    from dfplanner.planning.settings import resolve_settings
    from dfplanner.training.checkpoint import read_json

    metadata = read_json(checkpoint) if checkpoint else {"env_id": env_id, "planner": config.get("planner", {})}
    settings, sources = resolve_settings(metadata)
    if env_id and is_known(env_id):  # dfplan eval cuts plans at the episode's end
        settings = dataclasses.replace(settings, episode_steps=family_of(env_id).eval_task(env_id).steps)
        sources["episode_steps"] = "the env's episode length"
    where = f"checkpoint {checkpoint}" if checkpoint else "a checkpoint trained with this config"
    lines = [f"\n# The planner settings `dfplan eval` acts with ({where}) and where each comes from",
             "# (defaults < env facts < checkpoint [planner] < --preset < flags):"]
    values = settings.to_dict()
    width = max(len(f"{name} = {json.dumps(value)}") for name, value in values.items())
    lines += [f"#   {f'{name} = {json.dumps(value)}':<{width}}  {sources[name]}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def _run_name(source) -> str:
    """The default run folder name for a dataset: minari:ns/name-v0 -> ns-name-v0, ogbench:NAME -> NAME,
    a file or folder -> its stem."""
    text = str(source)
    for prefix in ("minari:", "ogbench:"):
        if text.startswith(prefix):
            return text.removeprefix(prefix).replace("/", "-")
    return Path(text).stem


def format_summary(result: dict) -> str:
    """A short human-readable table of an evaluate() result."""
    if result["success_rate"] is None:
        goal = "no goal"
    elif "per_task" in result:
        goal = "tasks " + ", ".join(result["per_task"])
    else:
        goal = "multi-goal" if result["multi_goal"] else "single-goal"
    if result["normalized_score_mean"] is None:
        score = "none: this env has no normalized score, raw returns only"
    else:
        score = (f"{result['normalized_score_mean']:.1f} +- {result['normalized_score_sem']:.1f} (sem), "
                 f"std {result['normalized_score_std']:.1f}")
    rows = [
        ("env", f"{result['env']} ({goal}), {result['episodes']} episodes, seed {result['seed']}"),
        ("policy", result["policy"]),
        ("normalized score", score),
        ("return", f"{result['return_mean']:.1f} +- {result['return_std']:.1f} (std)"),
        ("success rate", "none: the env has no goal" if result["success_rate"] is None else f"{result['success_rate']:.2f}"),
        *([("per task", ", ".join(f"{k}: {v['success_rate']:.2f}" for k, v in result["per_task"].items()))]
          if "per_task" in result else []),
        *([("first reach", f"{result['first_reach_mean']:.1f} steps")] if result["first_reach_mean"] is not None else []),
        *([("missed goals", ", ".join(f"{k}: {v}" for k, v in result["failures"].items()) or "none")] if "failures" in result else []),
        ("actions/s", f"{result['decisions_per_second']:.0f} inside the policy (all envs of a batch)"
                      + (f", {result['decisions_per_second'] / result['planner']['replan_every']:.0f} plans/s"
                         if "planner" in result else "")),
        ("wall time", f"{result['wall_time_s']:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's help ends with its default, unless it has none to show (its help then says what applies)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """The parser of `dfplan` and, through add_subparsers, of each of its commands; a bad flag is one
    line and exit code 2, as every other user error."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, formatter_class=_DefaultsShown, **kwargs)

    def error(self, message: str):
        command = self.prog.removeprefix("dfplan").strip()
        raise DfplannerError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


SEEDS = (0, 2**32 - 1)  # numpy's and torch's seed range
MAX_EPISODES = 100_000  # per evaluation: every per-episode record is kept
MAX_BATCH = 4096  # environments stepped in lockstep
MAX_TRAIN_STEPS = 10**9


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], or a one-line error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high:,}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    from dfplanner import __version__

    from dfplanner.envs import FAMILIES

    envs = "; ".join(family.names for family in FAMILIES)
    parser = _Parser(prog="dfplan", description="Diffusion Forcing planning for offline reinforcement learning: "
                     "D4RL maze2d, OGBench mazes and any gymnasium env with a flat Box observation.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="offline datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    generate = data_commands.add_parser("generate", help="make a dataset by an env family's recipe (D4RL's for maze2d, OGBench's for its mazes)")
    generate.add_argument("--env", required=True, help=f"the dataset's env or name: {envs}")
    generate.add_argument("--steps", type=int_in(1, 10**8), default=None, help="maze2d; default: D4RL's size (1M / 2M / 4M)")
    generate.add_argument("--episodes", type=int_in(1, 10**6), default=None, help="OGBench; default: its recipe (navigate 1000, giant 500, stitch 5000)")
    generate.add_argument("--seed", type=int_in(*SEEDS), default=0, help="seeds the expert's starts, targets and action noise")
    generate.add_argument("--out", default=None, help="hdf5 path (maze2d; default: in $DFPLANNER_DATA or ~/.cache/dfplanner) "
                          "or npz path (OGBench; default: in $OGBENCH_DATA or ~/.ogbench/data)")
    generate.add_argument("--minari", default=None, metavar="ID", help="also write a Minari dataset with this id")
    generate.set_defaults(func=cmd_data_generate)

    evaluate = commands.add_parser("eval", help="evaluate a policy on an env family's protocol (D4RL's for maze2d, OGBench's for its mazes)")
    evaluate.add_argument("--env", default=DEFAULT_EVAL_ENV, help=f"the env, or the dataset whose env and checkpoint to use: {envs}")
    evaluate.add_argument("--task", type=int_in(1, 100), default=None, metavar="K", help="OGBench: only evaluation task K (1..5); default: all 5 in turn")
    evaluate.add_argument("--policy", choices=sorted(POLICIES), default=DEFAULT_POLICY,
                          help="the Diffusion Forcing planner; bc, the model-free baseline (behaviour cloning aimed at the "
                          "planner's route subgoals, a head beside the checkpoint; --route-lookahead / --route-traffic move them); "
                          "the scripted oracle; uniform random actions")
    evaluate.add_argument("--episodes", type=int_in(1, MAX_EPISODES), default=20, help="episodes to run")
    evaluate.add_argument("--seed", type=int_in(*SEEDS), default=0, help="seeds each episode's start (and target with --multi-goal)")
    evaluate.add_argument("--multi-goal", action="store_true", help="random target per episode (Diffuser's Multi2D)")
    evaluate.add_argument("--batch-size", type=int_in(1, MAX_BATCH), default=50, help="environments run in lockstep")
    evaluate.add_argument("--json", default=None, metavar="PATH", help="write the full result as JSON")
    evaluate.add_argument("--plot", default=None, metavar="PNG", help="draw the episodes (the last 16 at most) and their last plans")
    evaluate.add_argument("--video", default=None, metavar="DIR",
                          help="record the first environment's episodes, one MP4 each, into DIR (needs the [video] extra)")
    _add_planner_arguments(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    plan = commands.add_parser("plan", help="animate one plan being denoised under the scheduling matrix")
    plan.add_argument("--env", default=DEFAULT_EVAL_ENV, help="an env with a maze to draw (maze2d, OGBench mazes)")
    plan.add_argument("--out", required=True, metavar="GIF|PNG", help="an animated .gif, or a .png of a few rows")
    plan.add_argument("--seed", type=int_in(*SEEDS), default=0, help="the episode's start (and target with --multi-goal)")
    plan.add_argument("--multi-goal", action="store_true", help="a random target")
    plan.add_argument("--fps", type=float, default=5.0, help="GIF frames (sampling rows) per second")
    _add_planner_arguments(plan, preset="picture")  # `--preset shipped`: the acting planner's own settings
    plan.set_defaults(func=cmd_plan)

    _add_train_command(commands, envs)
    _add_expert_command(commands)
    _add_head_command(commands)
    routes = commands.add_parser("routes", help="write a checkpoint's routes from its training data (dfplan train does it itself)")
    routes.add_argument("--checkpoint", required=True, help="the checkpoint (NAME.json or a run folder); writes NAME.routes.safetensors")
    routes.add_argument("--dataset", default=None, help="its training data (default: the one it records, or the maze's generated one)")
    routes.set_defaults(func=cmd_routes)
    _add_config_command(commands)
    return parser


def _add_train_command(commands, envs: str) -> None:
    train = commands.add_parser("train", help="train a Diffusion Forcing planner")
    train.add_argument("--env", default=None, help=f"the env (default: the one the dataset names): {envs}")
    train.add_argument("--dataset", default=None, help="a D4RL-style .hdf5 file, an OGBench .npz file, ogbench:NAME, minari:ID, a Minari dataset folder, "
                       "or d4rl:ENV where d4rl imports (default: the env's own dataset, made by its recipe if missing)")
    train.add_argument("--out", default=None, help="run folder (default: runs/ENV, or runs/DATASET without --env)")
    train.add_argument("--config", default=None, help="TOML file overriding the environment's tuned config (docs/config.md)")
    train.add_argument("--steps", type=int_in(1, MAX_TRAIN_STEPS), default=None, help="default: the config's [training] steps")
    train.add_argument("--batch-size", type=int_in(1, 65536), default=None, help="default: the config's [training] batch_size")
    train.add_argument("--save-every", type=int_in(1, MAX_TRAIN_STEPS), default=None, help="default: the config's [training] save_every")
    train.add_argument("--device", default=DEFAULT_DEVICE, help="auto, cpu or cuda")
    train.add_argument("--threads", type=int_in(1, 1024), default=None, help="CPU threads for torch (default: torch's choice)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out exactly as it was started (every other flag may be left out; "
                            "a larger --steps extends it)")
    train.add_argument("--eval-every", type=int_in(0, MAX_TRAIN_STEPS), default=None, metavar="N",
                       help="evaluate the EMA planner every N steps for TensorBoard (default: 0, off: it costs CPU time)")
    train.add_argument("--eval-episodes", type=int_in(1, 1000), default=None, help=f"default: {DEFAULT_EVAL_EPISODES}")
    train.set_defaults(func=cmd_train)


def _add_expert_command(commands) -> None:
    expert = commands.add_parser("expert", help="the experts that make data (trained online with stable-baselines3's SAC)")
    expert_commands = expert.add_subparsers(dest="expert_command", required=True)
    train = expert_commands.add_parser("train", help="train (or resume) an expert; needs the [expert] extra")
    train.add_argument("--env", required=True, help="the expert: ant (OGBench's AntMaze walker)")
    train.add_argument("--out", default=None, help="run folder (default: runs/experts/ENV); an interrupted run resumes from it")
    train.add_argument("--steps", type=int_in(1, 10**8), default=None, help="env steps (default: OGBench's 400,000)")
    train.add_argument("--save-every", type=int_in(1, 10**8), default=None, help="env steps between resumable saves (default: 20,000)")
    train.add_argument("--seed", type=int_in(*SEEDS), default=0, help="seeds SAC and the directions")
    train.set_defaults(func=cmd_expert_train)


def _add_head_command(commands) -> None:
    from dfplanner.planning.action_head import HEAD_KINDS

    head = commands.add_parser("head", help="action heads beside a checkpoint, fitted on its training data")
    head_commands = head.add_subparsers(dest="head_command", required=True)
    train = head_commands.add_parser("train", help="fit an inverse-dynamics (--action-mode inverse) or bc (--policy bc) head")
    train.add_argument("--checkpoint", required=True, help="the checkpoint (NAME.json or a run folder); writes NAME.KIND.safetensors")
    train.add_argument("--kind", required=True, choices=HEAD_KINDS)
    train.add_argument("--dataset", default=None, help="its training data (default: the one the checkpoint records)")
    train.add_argument("--steps", type=int_in(1, MAX_TRAIN_STEPS), default=5000, help="optimizer steps")
    train.add_argument("--ahead-min", type=int_in(1, 100_000), default=None,
                       help="nearest hindsight target, env steps (default: inverse: track_ahead + 1; bc: 1)")
    train.add_argument("--ahead-max", type=int_in(1, 100_000), default=None,
                       help="farthest hindsight target (default: inverse: track_ahead + 1; bc: twice route_lookahead)")
    train.add_argument("--seed", type=int_in(*SEEDS), default=0)
    train.add_argument("--allow-unverified", action="store_true", help="load a checkpoint whose JSON records no weights digest")
    train.set_defaults(func=cmd_head_train)


def _add_config_command(commands) -> None:
    config = commands.add_parser("config", help="the training configuration (every key: docs/config.md)")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser("show", help="print the effective config as TOML (what `train` would use)")
    show.add_argument("--env", default=None, help="an env: its tuned config (default: the package defaults)")
    show.add_argument("--config", default=None, help="a TOML file overlaid, as `train --config` does")
    show.add_argument("--run", default=None, metavar="DIR", help="the config a run in DIR was started with")
    show.set_defaults(func=cmd_config_show)


def planner_flags() -> dict:
    """The `dfplan eval` / `dfplan plan` flags: one per PlannerSettings field marked as a flag, its
    help and choices taken from the field (dest -> field)."""
    import dataclasses

    from dfplanner.planning.settings import PlannerSettings

    return {f.name: f for f in dataclasses.fields(PlannerSettings) if f.metadata.get("flag")}


def _add_planner_arguments(command: argparse.ArgumentParser, preset: str | None = None) -> None:
    """The checkpoint, the device, a preset (default `preset`) and one flag per planner setting."""
    from dfplanner.planning.settings import INT_RANGES, preset_names

    command.add_argument("--checkpoint", default=None, help="planner checkpoint (default: the shipped one)")
    command.add_argument("--device", default="auto", help="auto, cpu or cuda")
    command.add_argument("--precision", choices=("float32", "bfloat16"), default=DEFAULT_PRECISION,
                         help="the denoiser's arithmetic while planning (bfloat16: CUDA only)")
    command.add_argument("--allow-unverified", action="store_true",
                         help="load a checkpoint whose JSON records no sha256 of its weights (only a file you trust)")
    command.add_argument("--preset", choices=preset_names(), default=preset,
                         help="named planner settings (dfplanner/planning/presets), applied over the checkpoint's")
    planner = command.add_argument_group(
        "planner settings (each defaults to the checkpoint's, which its env family and config may set: "
        "`dfplan config show --env ENV` prints every value and its source; the package default is shown)")
    for name, field in planner_flags().items():
        flag, default = "--" + name.replace("_", "-"), field.default
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else ("every token" if default is None else default)
        text = f"{field.metadata['help']} (package default: {shown})"
        if isinstance(default, bool):
            planner.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif isinstance(default, tuple):
            planner.add_argument(flag, type=type(default[0]), nargs=len(default), default=None, help=text)
        else:
            kind = int_in(*INT_RANGES[name]) if name in INT_RANGES else type(default)
            planner.add_argument(flag, type=kind, choices=field.metadata["choices"], default=None, help=text)


def _note(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning, as the command line prints it: one line."""
    print(f"dfplan: note: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _note
    try:
        args = build_parser().parse_args(argv)
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
