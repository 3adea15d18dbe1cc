"""The training engine: configuration, schedules, checkpoints and the loop."""
