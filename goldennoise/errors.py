"""One base class for every error meant for the person using GoldenNoise.

A `UserError` says what is wrong and what to do, naming the field (`prompt`,
`height`, `annotator`, ...). The UI shows these as messages and the API returns
them to the caller; anything else is a bug: it is logged with its traceback and
the user is told that something went wrong on the server, never its internals.
"""

from __future__ import annotations


class UserError(ValueError):
    """An error the user can act on; the message names the field and the fix."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ModelLoadError(UserError):
    """A model could not be loaded; the message says why and what to try."""


class GenerationError(UserError):
    """Generation failed in a way the user can act on (out of memory, a size too large)."""


class PromptFileError(UserError):
    """A prompt file that cannot be used; the message says where and why."""


class NoiseMismatch(UserError):
    """A re-made noise does not match what its record says."""


class UnsupportedPipeline(UserError):
    """A pipeline family whose initial latents GoldenNoise cannot reproduce exactly."""


class CampaignError(UserError):
    """A campaign file or setting that cannot be used."""


class Refused(UserError):
    """A request that is not allowed (someone else's record, a stale batch, not an administrator)."""


class NotSaved(UserError):
    """An answer could not be written; nothing was recorded and the screen is kept for a retry."""


class LeaseLost(Refused):
    """The prompt on a tab's screen is no longer held by that tab (dropped for a newer tab, or idle too long)."""
