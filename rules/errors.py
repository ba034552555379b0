"""The only error types the rules package lets escape to callers (the fuzz tests hold it to that)."""

from __future__ import annotations

from collections.abc import Sequence

from mugpos.core.errors import MugposError
from mugpos.rules.examples import EXAMPLES


class RuleError(MugposError, ValueError):
    """Base of every rule problem a user can cause; the message is meant for them, not a traceback."""


class RuleValidationError(RuleError):
    """A rule definition (JSON or Avro record) that cannot be stored: names the offending path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.detail = message


class RuleSyntaxError(RuleError):
    """A sentence the grammar cannot read: carries the position, the word and what was expected."""

    def __init__(
        self,
        text: str,
        position: int,
        message: str,
        expected: Sequence[str] = (),
        suggestion: str | None = None,
        length: int = 1,
    ) -> None:
        self.text = text
        self.position = position
        self.length = max(1, length)
        self.detail = message
        self.expected = tuple(expected)
        self.suggestion = suggestion
        super().__init__(self.render())

    def render(self) -> str:
        """Multi-line message: what is wrong, the sentence with a caret under the word, what would fit."""
        shown = self.text.replace("\n", " ").replace("\t", " ")
        lines = [f"cannot read the rule at character {self.position + 1}: {self.detail}"]
        if shown:
            lines += [
                "  " + shown,
                "  " + " " * self.position + "^" * min(self.length, max(1, len(shown) - self.position)),
            ]
        if self.suggestion:
            lines.append(f"did you mean {self.suggestion!r}?")
        if self.expected:
            lines.append("expected: " + ", ".join(self.expected))
        lines.append("accepted forms, for example:")
        lines += [f"  {example}" for example in EXAMPLES]
        lines.append("(the full grammar is in rules/GRAMMAR.md)")
        return "\n".join(lines)
