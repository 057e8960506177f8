"""Who holds a lease or a claim: an id naming host, process and run, and whether it still lives.

core/jobs.py's leases and core/activity.py's claims on Tasks being sent use them: a holder on this
machine whose process is gone has lost what it held at once; one on another machine only when
its time runs out.
"""

from __future__ import annotations

import os
import socket
import uuid


def new_holder() -> str:
    """An id for one run: host, pid and a random part (threads of one process differ too)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def holder_alive(holder: str) -> bool:
    """False when ``holder`` ran on this machine and its process is gone (or a zombie)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: only the lease's expiry tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return not _is_zombie(int(pid))


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False
