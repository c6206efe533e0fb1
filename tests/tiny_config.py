"""A model small enough to train in seconds: a TOML overlay for `dfplan train --config`."""


def tiny_config(**training) -> str:
    """Frame stack 5, windows of 6 tokens, a 32-unit GRU, 4-token plans; `training` keys as given."""
    lines = ["[tokens]", "frame_stack = 5", "window = 6", "[model]", "hidden = 32", "[training]"]
    lines += [f"{key} = {value}" for key, value in training.items()]
    lines += ["[planner]", "horizon = 4", "steps = 3", "replan_every = 5"]
    return "\n".join(lines) + "\n"
