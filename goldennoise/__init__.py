"""GoldenNoise: collect the seeds (initial noises) that make a text-to-image model produce its best images.

The public surface, imported lazily so that `import goldennoise` (and `goldennoise --help`) stays fast:

    from goldennoise import Collector                    # the loop in a script: generate, judge, read, export
    from goldennoise import RecordStore, live, sample_table   # the records and the live answers as a table
    from goldennoise import remake_noise, remake_latents, verify_noise   # a record's exact noise and latents
    from goldennoise import Campaign, load_campaign, UserError
"""

from __future__ import annotations

from importlib import import_module

from goldennoise.version import __version__

_EXPORTS = {
    "Collector": "goldennoise.facade",
    "Campaign": "goldennoise.store.campaign",
    "load_campaign": ("goldennoise.store.campaign", "load"),
    "RecordStore": "goldennoise.store.records",
    "live": "goldennoise.store.live",
    "sample_table": "goldennoise.research.dataset",
    "pair_table": "goldennoise.research.dataset",
    "remake_noise": "goldennoise.generation.latents",
    "remake_latents": "goldennoise.generation.latents",
    "verify_noise": ("goldennoise.generation.latents", "verify"),
    "load_model": "goldennoise.generation.models",
    "UserError": "goldennoise.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'goldennoise' has no attribute {name!r}")
    target = _EXPORTS[name]
    module, attribute = target if isinstance(target, tuple) else (target, name)
    return getattr(import_module(module), attribute)
