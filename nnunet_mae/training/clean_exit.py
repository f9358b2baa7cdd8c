"""SIGTERM ends a run the way Ctrl-C does, so that nothing is left behind.

Python's default SIGTERM action kills the process at once: no `finally`, no `atexit`, so nnU-Net's data
augmentation workers (separate processes, hundreds of MB each) outlive their parent and the run lock stays.
With this handler SIGTERM raises SystemExit in the main process: the normal exit path runs, which stops the
workers (multiprocessing terminates its daemonic children at exit) and releases the lock. A kill by SIGKILL
cannot be caught; its stale lock is detected by the next run.
"""

from __future__ import annotations

import os
import signal
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
