"""Offline data: loaders of every source into one OfflineDataset (datasets, offline, ogbench_npz), the
recipes that make datasets here (maze2d_recipe, ogbench_recipe, experts), and the token layout and
training windows a model sees (tokens, windows)."""
