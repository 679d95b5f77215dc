"""A campaign: everything that defines a dataset, fixed in one file and one id.

    name = "schnell-sample"
    [model]       id = "FLUX.1-schnell"   revision = "…"   dtype = "auto"
    [generation]  num_inference_steps = 4   guidance_scale = 0.0   height = 1024   width = 1024
                  max_sequence_length = 256   scheduler = ""        (omitted: the model's defaults)
    [prompts]     file = "prompts/sample.csv"
    [seeds]       strategy = "pool"   start = 0   pool_size = 64   batch_size = 4
    [prefilter]   candidates = 0   method = "clip"   explore = 1
    [annotation]  overlap = 0.1   blind = true   min_view_ms = 400   clip = true   annotators = []

The campaign id is a slug of its name and a hash of everything above, the prompt
list's content included (not the file's path), so the same definition always has
the same id and any change makes a new one. `write` puts the resolved definition,
its TOML and the prompt list (with each prompt's metadata, stored once here, not in
every record) under `<outputs>/campaigns/<id>/`; every record carries the id.
Unknown keys, impossible values and missing files are refused naming the field.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from goldennoise.errors import CampaignError
from goldennoise.ids import slug
from goldennoise.store.prompts import PromptSet, load_prompts

CAMPAIGNS_DIR = "campaigns"
SECTIONS = {
    "model": {"id": "model", "revision": "revision", "dtype": "dtype"},
    "generation": {k: k for k in ("num_inference_steps", "guidance_scale", "height", "width",
                                  "max_sequence_length", "scheduler")},
    "prompts": {"file": "prompts"},
    "seeds": {"strategy": "seed_strategy", "start": "start_seed", "pool_size": "pool_size", "batch_size": "batch_size"},
    "prefilter": {"candidates": "candidates", "method": "prefilter", "explore": "explore"},
    "annotation": {"overlap": "overlap", "blind": "blind", "min_view_ms": "min_view_ms", "clip": "clip",
                   "annotators": "annotators"},
}
KEY_OF = {attribute: f"{section}.{key}" for section, keys in SECTIONS.items() for key, attribute in keys.items()}
STRATEGIES = ("random", "sequential", "pool")
METHODS = ("clip", "selector")


@dataclass(frozen=True)
class Campaign:
    """What defines the data; generation values None mean "the model's defaults" until `resolved`."""

    name: str = "goldennoise"
    model: str = "tiny-flux"
    revision: str | None = None
    dtype: str = "auto"
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None
    max_sequence_length: int | None = None
    scheduler: str | None = None
    prompts: str = "prompts/sample.csv"
    seed_strategy: str = "random"
    start_seed: int = 0
    pool_size: int = 64
    batch_size: int = 4
    candidates: int = 0
    prefilter: str = "clip"
    explore: int = 1
    overlap: float = 0.0
    blind: bool = True
    min_view_ms: int = 400
    clip: bool = True
    annotators: tuple[str, ...] = ()
    prompts_sha256: str | None = field(default=None, compare=False)  # set by `resolved`

    def check(self) -> "Campaign":
        """Raise CampaignError naming the first impossible value; return self."""
        def bad(name, rule, value):
            name = KEY_OF.get(name, name)  # the key as written in the file: section.key
            raise CampaignError(f"campaign {name}: {rule}, got {value!r}.", name)

        def whole(name, low, high, allow_none=False):
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                bad(name, f"must be a whole number in {low}..{high}", value)

        if not isinstance(self.name, str) or not 1 <= len(self.name.strip()) <= 80:
            bad("name", "must be 1..80 characters", self.name)
        if not isinstance(self.model, str) or not self.model.strip() or self.model != self.model.strip():
            bad("model", "must name a model (known name, hub id or folder), without surrounding spaces", self.model)
        if not isinstance(self.prompts, str) or not self.prompts:
            bad("prompts.file", "must be the path of a prompt file", self.prompts)
        for name in ("scheduler", "revision"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.isidentifier() and name == "scheduler"
                                      or len(str(value)) > 200):
                bad(name, "must be a class name (scheduler) or a commit/branch (revision)", value)
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            bad("dtype", "must be auto, float32, bfloat16 or float16", self.dtype)
        whole("num_inference_steps", 1, 500, True)
        for side in ("height", "width"):
            whole(side, 16, 4096, True)
            if getattr(self, side) is not None and getattr(self, side) % 16:
                bad(side, "must be a multiple of 16", getattr(self, side))
        g = self.guidance_scale
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 <= g <= 100):
            bad("guidance_scale", "must be a number in 0..100", g)
        whole("max_sequence_length", 1, 512, True)
        if self.seed_strategy not in STRATEGIES:
            bad("seeds.strategy", f"must be one of {', '.join(STRATEGIES)}", self.seed_strategy)
        whole("start_seed", 0, 2**63 - 1)
        whole("batch_size", 1, 64)
        whole("pool_size", self.batch_size, 100_000)
        if self.candidates and not self.batch_size < self.candidates <= 64:
            bad("prefilter.candidates", f"must be 0 (off) or {self.batch_size + 1}..64 (more than the batch)",
                self.candidates)
        if self.prefilter not in METHODS:
            bad("prefilter.method", f"must be one of {', '.join(METHODS)}", self.prefilter)
        if self.candidates and self.prefilter == "clip" and not self.clip:
            bad("prefilter.method", "clip needs annotation.clip = true", self.prefilter)
        whole("explore", 0, self.batch_size)
        o = self.overlap
        if isinstance(o, bool) or not isinstance(o, (int, float)) or not 0 <= o <= 1:
            bad("annotation.overlap", "must be a fraction in 0..1", o)
        whole("min_view_ms", 0, 60_000)
        for name in ("blind", "clip"):
            if not isinstance(getattr(self, name), bool):
                bad(f"annotation.{name}", "must be true or false", getattr(self, name))
        if not all(isinstance(a, str) and 1 <= len(a) <= 64 for a in self.annotators):
            bad("annotation.annotators", "must be a list of user names (1..64 characters)", list(self.annotators))
        return self

    @property
    def public_model(self) -> str:
        """The model as annotators may see it: a local folder by its name only, never its path."""
        if self.model.startswith(("/", ".", "~")) or "\\" in self.model:
            return Path(self.model).name + " (a local folder)"
        return self.model

    def allows(self, annotator: str) -> bool:
        return not self.annotators or annotator in self.annotators

    def definition(self) -> dict:
        """The values that define the data (what the id hashes)."""
        data = asdict(self)
        data["annotators"] = sorted(data["annotators"])
        return data

    @property
    def id(self) -> str:
        if self.prompts_sha256 is None:
            raise CampaignError("campaign: resolve it (prompts and model defaults) before asking for its id.")
        return _campaign_id(self, self.prompts_sha256)

    def resolved(self, spec, prompt_set: PromptSet) -> "Campaign":
        """Model defaults filled in from `spec` (a ModelSpec) and the prompt list's hash recorded."""
        values = {}
        for name in ("num_inference_steps", "guidance_scale", "height", "width", "max_sequence_length"):
            if getattr(self, name) is None:
                values[name] = getattr(spec, name)
        rows = [{"text": p.text, "id": p.id, "metadata": p.metadata} for p in prompt_set.prompts]
        values["prompts_sha256"] = hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        resolved = replace(self, **values).check()
        if resolved.seed_strategy == "sequential":  # the last prompt's seeds must exist too
            needed = len(prompt_set.prompts) * max(resolved.batch_size, resolved.candidates)
            if resolved.start_seed + needed - 1 > 2**63 - 1:
                raise CampaignError(f"campaign seeds.start: with {len(prompt_set.prompts)} prompts the sequential seeds "
                                    f"would pass 2^63-1; choose a start of at most {2**63 - needed}.", "seeds.start")
        return resolved

    def to_toml(self) -> str:
        lines = [f"name = {_toml(self.name)}"]
        for section, keys in SECTIONS.items():
            lines.append(f"\n[{section}]")
            for key, attr in keys.items():
                value = getattr(self, attr)
                if value is not None:
                    lines.append(f"{key} = {_toml(list(value) if isinstance(value, tuple) else value)}")
        return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=64)  # every record carries the id: hash the definition once per campaign
def _campaign_id(campaign: Campaign, prompts_sha256: str) -> str:
    key = {k: v for k, v in campaign.definition().items() if k not in ("prompts", "annotators")}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return f"{slug(campaign.name, 30)}-{digest}"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def from_mapping(data: dict, base: Path | None = None) -> Campaign:
    """A Campaign from parsed TOML, refusing unknown sections and keys."""
    values = {}
    for section, content in data.items():
        if section == "name":
            values["name"] = content
            continue
        if section not in SECTIONS:
            raise CampaignError(f"campaign: unknown section or key {section!r}; known: name, "
                                f"{', '.join(SECTIONS)}.", section)
        if not isinstance(content, dict):
            raise CampaignError(f"campaign [{section}]: must be a table of keys.", section)
        for key, value in content.items():
            if key not in SECTIONS[section]:
                raise CampaignError(f"campaign [{section}]: unknown key {key!r}; known: "
                                    f"{', '.join(SECTIONS[section])}.", f"{section}.{key}")
            values[SECTIONS[section][key]] = value
    if "annotators" in values:
        if not isinstance(values["annotators"], list):
            raise CampaignError("campaign annotation.annotators: must be a list of names.", "annotation.annotators")
        values["annotators"] = tuple(values["annotators"])
    if values.get("scheduler") == "":
        values["scheduler"] = None
    if base is not None and "prompts" in values and not Path(values["prompts"]).is_absolute():
        values["prompts"] = str(base / values["prompts"])
    known = {f.name for f in fields(Campaign)}
    return Campaign(**{k: v for k, v in values.items() if k in known}).check()


def load(path: str | Path) -> Campaign:
    """Read a campaign TOML file (relative prompt paths are relative to the file)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CampaignError(f"campaign file {path.name}: cannot read ({error.strerror}).", "campaign") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CampaignError(f"campaign file {path.name}: not valid TOML ({error}).", "campaign") from None
    return from_mapping(data, path.parent)


def load_prompt_set(campaign: Campaign) -> PromptSet:
    """The campaign's prompt file, parsed (a missing or bad file is a CampaignError)."""
    if not Path(campaign.prompts).is_file():
        raise CampaignError(f"campaign prompts.file: {Path(campaign.prompts).name!r} does not exist.", "prompts.file")
    return load_prompts(campaign.prompts)


def folder(outputs: str | Path, campaign_id: str) -> Path:
    return Path(outputs) / CAMPAIGNS_DIR / campaign_id


def write(outputs: str | Path, campaign: Campaign, prompt_set: PromptSet) -> Path:
    """Write the resolved campaign, its TOML and its prompt list under `<outputs>/campaigns/<id>/`."""
    target = folder(outputs, campaign.id)
    target.mkdir(parents=True, exist_ok=True)
    definition = json.dumps({"id": campaign.id, **campaign.definition()}, indent=1, sort_keys=True)
    existing = target / "campaign.json"
    if not existing.exists():
        _atomic(target / "prompts.jsonl", "".join(
            json.dumps({"index": p.index, "id": p.id, "text": p.text, "metadata": p.metadata,
                        "metadata_sha256": p.metadata_sha256}, ensure_ascii=False) + "\n" for p in prompt_set.prompts))
        _atomic(target / "campaign.toml", campaign.to_toml())
        _atomic(existing, definition + "\n")
    return target


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def read_written(outputs: str | Path) -> dict[str, dict]:
    """campaign id -> its resolved definition, for every campaign written under `outputs`."""
    found = {}
    for path in sorted((Path(outputs) / CAMPAIGNS_DIR).glob("*/campaign.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found[data["id"]] = data
        except (OSError, ValueError, KeyError):
            continue
    return found
