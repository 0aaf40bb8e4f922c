"""Ctrl-C and SIGTERM before a command takes them over.

Until then the entry point's handler turns either into a KeyboardInterrupt,
raised wherever Python is. Inside a callback whose exceptions Python ignores
(the import system's weak-reference callbacks, finalisers) it is only printed
("Exception ignored in ...") and lost: a sweep hit by a Ctrl-C while it
imported ran to its end and exited 0 (seen in CI). So the handler also
records the signal here, and :func:`mlp_backend.job.catch_interrupts` takes a
recorded one as a stop request.
"""

from __future__ import annotations

from typing import NoReturn

_received = False


def record_and_raise(signum: int, frame: object) -> NoReturn:
    """The signal handler of the first moments: records, then interrupts."""
    global _received
    _received = True
    raise KeyboardInterrupt


def take() -> bool:
    """Whether a signal came since the last call, which forgets it."""
    global _received
    came, _received = _received, False
    return came
