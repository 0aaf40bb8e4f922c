"""``mlp-backend`` and ``python -m mlp_backend``: the command line, started.

A quick Ctrl-C lands in the import of the command line (click and the option
tables, about a tenth of a second); there too it is one line and exit code
130, as it is once a command runs.
"""

import sys

from mlp_backend.errors import EXIT_INTERRUPTED


def run() -> None:
    try:
        from mlp_backend.cli import main
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    main(prog_name="mlp-backend")


if __name__ == "__main__":
    run()
