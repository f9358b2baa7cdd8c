"""One run per output folder: a lock file holding the owner's pid, host and command.

Two `nnUNetv2_train` on the same dataset, configuration, trainer and fold write the same checkpoints, logs
and validation folder; without a lock both finish and their results mix. The second run now stops at once
and names the first. A lock whose process is gone (killed, crashed) is stale: it is replaced, with a note
in the log. A lock written on another host cannot be checked from here and is never taken over silently.
"""

from __future__ import annotations

import atexit
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".nnunet_mae_run.lock"


class RunLockedError(RuntimeError):
    clear_refusal = True  # printed as one message by the trainers (training/clean_exit.py)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # being written, or truncated by a crash: treated as stale below if old enough


def acquire_run_lock(folder: str | os.PathLike) -> tuple[Path, str | None]:
    """Take the lock of `folder` for this process (re-entrant). Returns the lock path and a note about a stale
    lock that was replaced (or None). Raises RunLockedError while another live run holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": shlex.join(sys.argv)}
    note = None
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
                return path, None  # this process holds it already
            if holder.get("host", me["host"]) != me["host"]:
                raise RunLockedError(_message(folder, path, holder, other_host=True))
            if holder and _alive(int(holder["pid"])):
                raise RunLockedError(_message(folder, path, holder))
            if not holder and time.time() - path.stat().st_mtime < 5:
                time.sleep(1)  # another process is writing it right now
                continue
            note = (f"Removed a stale run lock {path} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                    f"started {holder.get('started', '?')}, no longer running).")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        atexit.register(release_run_lock, path)
        return path, note
    raise RunLockedError(f"Could not take the run lock {path}: it keeps changing. Is another run starting in "
                         f"{folder}?")


def release_run_lock(path: str | os.PathLike) -> None:
    path = Path(path)
    holder = _read(path)
    if holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


def _message(folder: Path, path: Path, holder: dict, other_host: bool = False) -> str:
    who = (f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}: "
           f"{holder.get('command', '?')}")
    if other_host:
        fix = (f"This host cannot tell whether that run is still going. If it is not, delete {shlex.quote(str(path))} "
               f"and start again.")
    else:
        fix = (f"Wait for it to finish, stop it, or train another fold/trainer: checkpoints, logs and validation "
               f"results of two runs in one folder would mix. (If pid {holder.get('pid')} is not a training run, "
               f"delete {shlex.quote(str(path))}.)")
    return f"Another run is already training in {folder} ({who}). {fix}"
