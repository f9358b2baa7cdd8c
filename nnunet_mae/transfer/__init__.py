"""Weight transfer from pre-training checkpoints into fine-tuning networks, and checkpoint I/O."""
