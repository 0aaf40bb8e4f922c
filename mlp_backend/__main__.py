"""``mlp-backend`` and ``python -m mlp_backend``: the command line, started.

A quick Ctrl-C lands in the import of the command line (click and the option
tables, about a tenth of a second); there too it is one line and exit code
130, as it is once a command runs. So does SIGTERM, which until then ended the
process without a word (exit status -15).
"""

import gc
import signal
import sys

from mlp_backend.errors import EXIT_INTERRUPTED
from mlp_backend.interrupts import record_and_raise


def run() -> None:
    # SIGTERM asks what Ctrl-C asks, until a command takes both over
    # (job.catch_interrupts) and again after it; a signal whose interrupt
    # Python swallows is still taken then (see mlp_backend.interrupts). One
    # that the process was started ignoring (a shell script's job in the
    # background ignores Ctrl-C) stays ignored, as Python itself leaves it.
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, record_and_raise)
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
