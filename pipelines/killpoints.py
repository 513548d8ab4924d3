"""Named crash points, for the kill harness (``tests/pipelines/test_kill_harness.py``).

Every write that must survive a crash passes named steps (``ingest.staged``,
``ingest.promoted``, ``run.committed`` ...). ``killpoint(name)`` does nothing in normal use;
with ``TUNEMANTRA_KILL_AT=<name>`` in the environment the process kills itself with SIGKILL
there: no ``finally``, no ``atexit``, no flush, exactly as ``kill -9`` or a lost machine would
leave it. The harness runs a real command once per step with the kill injected at that step,
then runs the command again and checks that nothing was lost or counted twice.

``TUNEMANTRA_KILL_TRACE=<file>`` appends each step reached to that file (one name a line), so
the harness can prove that every declared step is really passed by the path it kills.

These two are read here, not in ``Settings``: they are test hooks, not configuration, read at
each step (the harness sets them per child process) and from code with no settings at hand
(``lake.promote``); a production deployment never sets them.
"""

from __future__ import annotations

import os
import signal

KILL_AT = "TUNEMANTRA_KILL_AT"
KILL_TRACE = "TUNEMANTRA_KILL_TRACE"


def killpoint(name: str) -> None:
    """Die here, with SIGKILL, when the environment names this step; else do nothing."""
    trace = os.environ.get(KILL_TRACE)
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    if os.environ.get(KILL_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
