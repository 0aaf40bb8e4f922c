"""``mlp-backend`` and ``python -m mlp_backend``: the command line, started.

A quick Ctrl-C lands in the import of the command line (click and the option
tables, about a tenth of a second); there too it is one line and exit code
130, as it is once a command runs. So does SIGTERM, which until then ended the
process without a word (exit status -15).
"""

import gc
import signal
import sys
from typing import NoReturn

from mlp_backend.errors import EXIT_INTERRUPTED


def _as_interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def run() -> None:
    # SIGTERM asks what Ctrl-C asks, until a command takes both over
    # (job.catch_interrupts) and again after it.
    signal.signal(signal.SIGTERM, _as_interrupt)
    try:
        from mlp_backend.cli import main
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    try:
        main(prog_name="mlp-backend")
    finally:
        # Everything is written and closed by now. Frozen, the objects the
        # command made are left out of the interpreter's last garbage
        # collection, which shortens a sweep's exit by about 30 ms (13-17
        # against 41-49 ms from its last file to its end, measured).
        gc.freeze()


if __name__ == "__main__":
    run()
