"""Data utilities: synthetic nnU-Net v2 raw datasets for tests, the demo and benchmarks."""

from nnunet_mae.data.synthetic import write_synthetic_dataset

__all__ = ["write_synthetic_dataset"]
