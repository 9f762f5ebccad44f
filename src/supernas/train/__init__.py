"""Training engine: the supernet trainer (AttentiveNAS stage 1), schedules, losses, checkpoints,
distributed helpers and run logging."""
