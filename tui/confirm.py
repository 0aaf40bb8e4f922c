"""A yes-or-no question in front of the current screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask ``question``; dismiss with True for ``y`` and False for ``n``.

    Args:
        question: What to ask.
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        """The question and the keys that answer it."""
        with Vertical(id="confirm"):
            yield Static(self.question, id="question", markup=False)
            yield Static("y: yes    n: no", id="answers")
        # The screen's own footer: the one behind would list the keys of the
        # screen behind, which do nothing while the question is open.
        yield Footer()

    def action_answer(self, yes: bool) -> None:
        """Close with the answer."""
        self.dismiss(yes)
