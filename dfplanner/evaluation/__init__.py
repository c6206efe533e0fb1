"""Running policies on env families: the lockstep episode loop (rollout), ready planners and policies
(pretrained, policy), and what a run draws or records (plotting, denoising, video)."""
