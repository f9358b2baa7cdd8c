"""training/clean_exit.py: refusals are printed as one message; other exceptions keep their traceback."""

import subprocess
import sys

SCRIPT = """
from nnunet_mae.training.clean_exit import install_refusal_hook
from nnunet_mae.transfer.checkpoint_io import UnsafeCheckpointError
install_refusal_hook()
install_refusal_hook()  # twice: still one hook
if {refusal}:
    raise UnsafeCheckpointError("f.pth holds the object posix.system: loading it could run code.")
raise ValueError("a bug")
"""


def run(refusal: bool, **env):
    import os

    return subprocess.run([sys.executable, "-c", SCRIPT.format(refusal=refusal)], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_a_refusal_is_one_message_with_exit_status_1():
    result = run(True)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("nnunet_mae: f.pth holds the object posix.system: loading it could run code.")
    assert "Traceback" not in result.stderr


def test_other_errors_and_the_debug_switch_keep_the_traceback():
    bug = run(False)
    assert bug.returncode == 1 and "Traceback" in bug.stderr and "ValueError: a bug" in bug.stderr
    debug = run(True, NNUNET_MAE_TRACEBACK="1")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "UnsafeCheckpointError" in debug.stderr
