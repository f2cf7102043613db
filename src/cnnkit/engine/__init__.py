"""The engine all tasks share: loops, trainer, checkpoints, distributed set-up."""
