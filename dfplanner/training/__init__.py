"""One training run: a config (config) and a run folder (runs) drive the trainer (trainer), which
writes checkpoints a planner loads (checkpoint)."""
