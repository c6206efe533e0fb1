"""The Diffusion Forcing model: per-token noise levels (noise), scheduling matrices (scheduling), the
causal denoisers (models) and their training loss (objective)."""
