"""SIGTERM ends a run the way Ctrl-C does, so that nothing is left behind; a refusal ends it with one clear message.

Python's default SIGTERM action kills the process at once: no `finally`, no `atexit`, so nnU-Net's data
augmentation workers (separate processes, hundreds of MB each) outlive their parent and the run lock stays.
With this handler SIGTERM raises SystemExit in the main process: the normal exit path runs, which stops the
workers (multiprocessing terminates its daemonic children at exit) and releases the lock. A kill by SIGKILL
cannot be caught; its stale lock is detected by the next run.

A refusal (an exception class with `clear_refusal = True`: another run holds the folder, a checkpoint that would
run code, an encoder that does not fit) is the message a user acts on, not a crash: `install_refusal_hook` prints it
alone, without the traceback of nnU-Net's command line, and the process exits with status 1 as before. Set
NNUNET_MAE_TRACEBACK=1 to see the traceback too. Other exceptions go to the previous hook unchanged.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

_installed_in: int | None = None  # pid


def _exit_on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    raise SystemExit(128 + signum)


def install_sigterm_handler() -> bool:
    """Install the handler in this process (main thread only, once). Returns whether it is installed now."""
    global _installed_in
    if _installed_in == os.getpid():
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return False  # someone else (e.g. a launcher) handles SIGTERM: leave theirs
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _installed_in = os.getpid()
    return True


def _refusal_hook(previous):
    def hook(exc_type, exc, tb):
        if getattr(exc_type, "clear_refusal", False) and not os.environ.get("NNUNET_MAE_TRACEBACK"):
            sys.stderr.write(f"\nnnunet_mae: {exc}\n")
            return
        previous(exc_type, exc, tb)

    hook.nnunet_mae_refusal_hook = True
    return hook


def install_refusal_hook() -> None:
    """Print uncaught refusals as their message only (once per process; other exceptions unchanged)."""
    if not getattr(sys.excepthook, "nnunet_mae_refusal_hook", False):
        sys.excepthook = _refusal_hook(sys.excepthook)
