"""Training: recipes, the run lifecycle, tasks, checkpointing, distribution and precision."""
