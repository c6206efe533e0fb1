"""Describe the shipped checkpoints in their JSONs: the digests of their weights and routes, and the
dataset each was trained on with the command and seed that make it (results/README.md says how each
was trained). Weights and routes are not touched, and the planning digest of benchmarks/dfplan_eval.py
leaves these keys out, so stored benchmark results stay valid.

    python benchmarks/ship_checkpoints.py
"""

from __future__ import annotations

from dfplanner.envs import family_of
from dfplanner.evaluation.pretrained import SHIPPED_DIR
from dfplanner.training.checkpoint import TRAINED_ON_KEY, read_json, record_digest

DATA_SEED = 0  # every shipped checkpoint was trained on its family's default dataset, seed 0 (results/README.md)


def main() -> None:
    for path in sorted(SHIPPED_DIR.glob("*.json")):
        env_id = read_json(path)["env_id"]
        family = family_of(env_id)
        name = family.config_name(env_id)  # the name the recipe knows (maze2d-large), unless it is a family's shared config
        name = name if family.recognises(name) else env_id
        dataset = family.default_dataset(env_id)
        trained_on = {"dataset": dataset.name, "recipe": f"dfplan data generate --env {name} --seed {DATA_SEED}", "seed": DATA_SEED}
        record_digest(path, **{TRAINED_ON_KEY: trained_on})
        print(f"{path.name}: {trained_on['recipe']} -> {trained_on['dataset']}")


if __name__ == "__main__":
    main()
