"""Prompts -> digit classes: "a handwritten 7", "seven", "7", "the digit seven" all mean 7.

The model knows ten classes and nothing else, so a prompt it cannot map is refused
(a ValueError listing the accepted forms) rather than silently drawn as some digit.
"""

from __future__ import annotations

import re

from goldennoise.errors import UserError

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FORMS = ("7", "seven", "a handwritten 7", "a handwritten seven", "the digit 7", "the digit seven", "digit 7")
# Optional article, optional "handwritten", optional "digit"/"number", then the numeral or its word.
_PATTERN = re.compile(r"^(?:(?:a|an|the)\s+)?(?:handwritten\s+)?(?:(?:digit|number)\s+)?(?P<digit>[0-9]|[a-z]+)$")


def digit_of(prompt: str) -> int:
    """The digit 0..9 a prompt asks for; UserError (a ValueError) naming `prompt` and the accepted forms otherwise.

    Case, surrounding spaces and one trailing full stop are ignored.
    """
    text = " ".join(str(prompt).lower().split()).removesuffix(".") if isinstance(prompt, str) else ""
    match = _PATTERN.match(text)
    word = match["digit"] if match else None
    if word is not None and word.isdigit():
        return int(word)
    if word in WORDS:
        return WORDS.index(word)
    raise UserError(f"prompt: {str(prompt)[:60]!r} does not name a digit. The digits model accepts a digit 0-9 or "
                    f"its English word, optionally after 'a handwritten', 'the digit' or 'digit', e.g. "
                    f"{', '.join(repr(f) for f in FORMS)} (any case).", "prompt")


def prompt_of(digit: int) -> str:
    """The canonical prompt of a digit, as in prompts/digits.txt: "a handwritten 7"."""
    return f"a handwritten {int(digit)}"
