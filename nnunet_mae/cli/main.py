"""`nnunet_mae` console command: dispatches to sub-commands."""

from __future__ import annotations

import argparse
import importlib
import sys

from nnunet_mae import __version__

COMMANDS = {
    "add_unlabeled": ("nnunet_mae.cli.add_unlabeled", "add images without labels to a dataset's pre-training, "
                                                     "preprocessed with its plans"),
    "demo": ("nnunet_mae.cli.demo", "MAE pre-training vs from scratch on synthetic data, in minutes, no set-up"),
    "doctor": ("nnunet_mae.cli.doctor", "check the installation and nnU-Net's set-up, with fixes"),
    "probe": ("nnunet_mae.cli.probe", "what an encoder learnt: Dice of a linear probe of its frozen features, "
                                      "against a random encoder of the same shape"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="nnunet_mae", description="ViT + MAE pre-training for nnU-Net v2")
    parser.add_argument("--version", action="version", version=f"nnunet_mae {__version__}")
    parser.add_argument("command", choices=sorted(COMMANDS),
                        help="; ".join(f"{k}: {v[1]}" for k, v in COMMANDS.items()))
    args, rest = parser.parse_known_args(argv[:1])
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.main(argv[1:] + rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
