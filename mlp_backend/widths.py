"""Hidden-layer widths as people write them: ``64x32`` for ``(64, 32)``.

Commands, spec files, run folders and messages all spell a network's layers
this way; the module imports nothing heavy, so the command line can use it
before NumPy is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable

from mlp_backend.errors import UsageError


def widths_text(widths: Iterable[int]) -> str:
    """``(64, 32)`` -> ``"64x32"``."""
    return "x".join(str(w) for w in widths)


def parse_widths(text: str, where: str) -> tuple[int, ...]:
    """``"64x32"`` -> ``(64, 32)``; ``where`` names the option or key in errors."""
    try:
        widths = tuple(int(w) for w in str(text).split("x"))
    except ValueError:
        raise UsageError(
            f"{where}: expected widths like 64 or 64x32 (layers joined by 'x'), "
            f"got {text!r}"
        ) from None
    if not widths or any(w < 1 for w in widths):
        raise UsageError(f"{where}: widths must be positive integers, got {text!r}")
    return widths
