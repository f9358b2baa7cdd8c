"""Console commands (`nnunet_mae demo`, `nnunet_mae doctor`), each module a `main(argv=None)`."""
