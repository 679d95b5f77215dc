"""A campaign: everything that defines a dataset, fixed in one file and one id.

Every field is declared once, below, with its TOML key, its rule, its help and its
command-line flag; the TOML reader and writer, the `goldennoise app/generate` flags,
the administrators' Settings form, the `/init_model` and `/switch_campaign`
endpoints and the README's campaign reference are all derived from these
declarations (`SETTINGS`), and every value is checked by one rule (`Campaign.check`).

    name = "schnell-sample"
    [model]       id = "FLUX.1-schnell"   revision = "…"   dtype = "auto"
    [generation]  num_inference_steps = 4   guidance_scale = 0.0   height = 1024   width = 1024 …
    [prompts]     file = "prompts/sample.csv"
    [guidelines]  text = "…"   (or file = "guidelines.md")
    [seeds]       strategy = "pool"   start = 0   pool_size = 64   batch_size = 4
    [prefilter]   candidates = 0   method = "clip"   explore = 1
    [annotation]  overlap = 0.1   blind = true   show_clip_pick_after = false   min_view_ms = 400   clip = true …

The campaign id is a slug of its name and a hash of everything above, the prompt
list's content and the guidelines' text included (not the files' paths), so the
same definition always has the same id and any change makes a new one. `write`
puts the resolved definition, its TOML and the prompt list (with each prompt's
metadata, stored once here, not in every record) under `<outputs>/campaigns/<id>/`.
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
from goldennoise.store.names import identity
from goldennoise.store.prompts import MAX_CAMPAIGN_FILE_BYTES, PromptSet, load_prompts

CAMPAIGNS_DIR = "campaigns"
MAX_SEED = 2**63 - 1
MAX_GUIDELINES = 20_000
GENERATION = ("num_inference_steps", "guidance_scale", "height", "width", "max_sequence_length", "scheduler")


@dataclass(frozen=True)
class Rule:
    """What a value may be: the one check of each field (`Campaign.check`) and the form's widget."""

    kind: str  # "text", "int", "float", "bool", "choice", "names", "identifier"
    low: float | None = None
    high: float | None = None
    multiple: int = 1
    choices: tuple[str, ...] = ()
    optional: bool = False  # None allowed: "the model's default"
    max_length: int = 200
    widget: str = ""  # the form's widget when not the kind's own: "textarea", "seed", "dropdown"


def setting(key: str, default, help: str, rule: Rule, flag: str | None = None, invert: bool = False,
            form: bool = True):
    """A campaign field: its TOML key (`section.key`), default, help, rule and command-line flag.

    `invert`: a boolean whose flag sets it false (`--no-clip`); `form`: shown in the Settings form."""
    return field(default=default, metadata={"key": key, "help": help, "rule": rule, "flag": flag,
                                            "invert": invert, "form": form})


STRATEGIES = ("random", "sequential", "pool")
METHODS = ("clip", "selector")  # or "verifier:<name>", a verifier the campaign scores with
VERIFIERS = ("pickscore", "hpsv2", "imagereward", "aesthetic", "digits", "learned")  # beside CLIP (digits: the
# sandbox's; learned: a head trained on a campaign's labels, scoring.learned_checkpoint)
STAND_INS = tuple(f"tiny-{v}" for v in VERIFIERS[:4])  # offline stand-ins: the architectures, random weights
DTYPES = ("auto", "float32", "bfloat16", "float16")
NOISE_SOURCES = ("seed", "redenoise", "model")
NOISE_PAIRINGS = ("mixed", "same_seed")


@dataclass(frozen=True)
class Campaign:
    """What defines the data; generation values None mean "the model's defaults" until `resolved`."""

    name: str = setting("name", "goldennoise", "campaign name (the id is a slug of it and a hash of the rest)",
                        Rule("text", 1, 80), "--name")
    model: str = setting("model.id", "tiny-flux", "a known model name, a hub id 'owner/name' or a model folder "
                         "(the command's default: FLUX.1-schnell with CUDA, else digits)",
                         Rule("text", 1, 300, widget="dropdown"), "--model")
    revision: str | None = setting("model.revision", None, "hub revision (commit) to pin; empty: the latest",
                                   Rule("text", 1, 200, optional=True), "--revision")
    dtype: str = setting("model.dtype", "auto", "weights and latents dtype (auto: bfloat16 on CUDA, float32 on CPU)",
                         Rule("choice", choices=DTYPES), "--dtype")
    num_inference_steps: int | None = setting("generation.num_inference_steps", None, "denoising steps (empty: "
                                              "the model's default)", Rule("int", 1, 500, optional=True), "--steps")
    guidance_scale: float | None = setting("generation.guidance_scale", None, "guidance scale (empty: the model's "
                                           "default)", Rule("float", 0, 100, optional=True), "--guidance")
    height: int | None = setting("generation.height", None, "image height in pixels, a multiple of 16 (empty: the "
                                 "model's default)", Rule("int", 16, 4096, 16, optional=True), "--height")
    width: int | None = setting("generation.width", None, "image width in pixels, a multiple of 16 (empty: the "
                                "model's default)", Rule("int", 16, 4096, 16, optional=True), "--width")
    max_sequence_length: int | None = setting("generation.max_sequence_length", None, "text tokens the T5 encoder "
                                              "reads (FLUX, SD3; empty: the model's default)",
                                              Rule("int", 1, 512, optional=True), "--max-sequence-length")
    scheduler: str | None = setting("generation.scheduler", None, "scheduler class name (empty: the pipeline's own)",
                                    Rule("identifier", optional=True), "--scheduler")
    prompts: str = setting("prompts.file", "prompts/sample.csv", "prompt file (CSV with a 'prompt' column, JSON, "
                           "JSONL or TXT); relative to the campaign file", Rule("text", 1, 4096), "--prompts",
                           form=False)
    guidelines: str = setting("guidelines.text", "", "what 'golden' means for this campaign (Markdown), shown on the "
                              "start screen and with '?' in every view; or `file = \"guidelines.md\"`",
                              Rule("text", 0, MAX_GUIDELINES, widget="textarea"), "--guidelines")
    seed_strategy: str = setting("seeds.strategy", "random", "random | sequential | pool (a fixed pool, each seed "
                                 "judged under many prompts)", Rule("choice", choices=STRATEGIES), "--seed-strategy")
    start_seed: int = setting("seeds.start", 0, "first seed (sequential and pool)", Rule("int", 0, MAX_SEED,
                              widget="seed"), "--start-seed")
    pool_size: int = setting("seeds.pool_size", 64, "seeds in the pool (pool strategy)", Rule("int", 1, 100_000),
                             "--pool-size")
    batch_size: int = setting("seeds.batch_size", 4, "seeds shown per prompt", Rule("int", 1, 64), "--batch-size")
    candidates: int = setting("prefilter.candidates", 0, "0: off; else batch_size+1..64 candidates made per "
                              "prompt, the best shown", Rule("int", 0, 64), "--candidates")
    prefilter: str = setting("prefilter.method", "clip", "how candidates are ranked: clip | selector (a seed "
                             "selector the analysis recommended for this configuration) | verifier:NAME (NAME one of "
                             "scoring.verifiers)", Rule("text", 1, 60, widget="method"), "--prefilter")
    explore: int = setting("prefilter.explore", 1, "of the shown slots, how many are drawn at random from the "
                           "hidden candidates", Rule("int", 0, 64), "--explore")
    overlap: float = setting("annotation.overlap", 0.0, "share of prompts judged by two annotators (the same "
                             "batch), for agreement", Rule("float", 0, 1), "--overlap")
    blind: bool = setting("annotation.blind", True, "no CLIP score, pick or rank on screen, before or after an "
                          "answer", Rule("bool"), "--show-scores", invert=True)
    show_clip_pick_after: bool = setting("annotation.show_clip_pick_after", False, "after each answer, say which "
                                         "image CLIP would have picked (recorded; it teaches annotators CLIP's "
                                         "taste)", Rule("bool"), "--show-clip-pick")
    min_view_ms: int = setting("annotation.min_view_ms", 400, "a batch must be fully on screen this long before "
                               "an answer counts", Rule("int", 0, 60_000), "--min-view-ms")
    clip: bool = setting("annotation.clip", True, "compute CLIP scores (needed by the clip pre-filter)",
                         Rule("bool"), "--no-clip", invert=True)
    verifiers: tuple[str, ...] = setting("scoring.verifiers", (), "verifiers scoring every image beside CLIP: "
                                         "pickscore, hpsv2, imagereward, aesthetic (or their offline stand-ins "
                                         "tiny-pickscore, ...; random weights), digits (the digits model's), learned "
                                         "(trained on a campaign's labels: scoring.learned_checkpoint); each "
                                         "needs its weights (a missing one stops the start)",
                                         Rule("names", 1, 40, widget="verifiers"), "--verifiers")
    noise_source: str = setting("noise.source", "seed", "seed: every candidate starts from its seed's draw; "
                                "redenoise: a share of the candidates start from NPNet's re-denoised noise of their "
                                "seed (kept under outputs/noises/), mixed in at random positions, the annotator not "
                                "told (the noise settings are not in the Settings tab, which annotators see); "
                                "model: the same with a trained noise model (noise.checkpoint)", Rule("choice", choices=NOISE_SOURCES), "--noise-source", form=False)
    noise_share: float = setting("noise.share", 0.5, "share of each batch's candidates drawn from the noise source "
                                 "(the rest are plain seeds, for comparison)", Rule("float", 0, 1), "--noise-share",
                                 form=False)
    noise_pairing: str = setting("noise.pairing", "mixed", "mixed: the source's candidates and the plain ones are "
                                 "different seeds of one batch (judged in the Workbench); same_seed: each seed of a "
                                 "batch appears twice, from its draw x_T and from the source's noise x'_T made from "
                                 "it, and the two are compared side by side in Pairwise, left and right at random "
                                 "(NPNet's comparison; needs seeds.batch_size = 2: one seed per prompt; not answered "
                                 "in the Workbench)", Rule("choice", choices=NOISE_PAIRINGS), "--noise-pairing", form=False)
    noise_guidance_scale: float | None = setting("noise.guidance_scale", None, "redenoise: the guidance of its "
                                                 "denoising step (empty: 4, or for FLUX.1 the prompt alone)",
                                                 Rule("float", 0, 100, optional=True), "--noise-guidance",
                                                 form=False)
    noise_inversion_guidance_scale: float | None = setting(
        "noise.inversion_guidance_scale", None, "redenoise: the guidance of its inverse step (empty: 1, or for FLUX.1 "
        "0, the empty prompt)", Rule("float", 0, 100, optional=True), "--noise-inversion-guidance",
        form=False)
    noise_checkpoint: str | None = setting("noise.checkpoint", None, "model: the noise model's safetensors file "
                                           "(`goldennoise train`); relative to where the app runs",
                                           Rule("text", 1, 4096, optional=True), "--noise-checkpoint", form=False)
    learned_checkpoint: str | None = setting("scoring.learned_checkpoint", None, "the learned verifier's file "
                                             "(`goldennoise train --kind verifier`), needed when scoring.verifiers "
                                             "names learned", Rule("text", 1, 4096, optional=True),
                                             "--learned-checkpoint", form=False)
    annotators: tuple[str, ...] = setting("annotation.annotators", (), "who may label (empty: anyone who can log "
                                          "in)", Rule("names", 1, 64), None, form=False)
    prompts_sha256: str | None = field(default=None, compare=False)  # set by `resolved`

    def check(self) -> "Campaign":
        """Raise CampaignError naming the first impossible value (as `section.key`); return self."""
        for f in fields(self):
            if "rule" in f.metadata:
                _check(f.metadata["key"], f.metadata["rule"], getattr(self, f.name))
        if self.model != self.model.strip():
            _bad("model.id", "must name a model without surrounding spaces", self.model)
        if self.pool_size < self.batch_size:
            _bad("seeds.pool_size", f"must be at least seeds.batch_size ({self.batch_size})", self.pool_size)
        if self.candidates and not self.batch_size < self.candidates:
            _bad("prefilter.candidates", f"must be 0 (off) or {self.batch_size + 1}..64 (more than the batch)",
                 self.candidates)
        if self.explore > self.batch_size:
            _bad("prefilter.explore", f"must be at most seeds.batch_size ({self.batch_size})", self.explore)
        if self.candidates and self.prefilter == "clip" and not self.clip:
            _bad("prefilter.method", "clip needs annotation.clip = true", self.prefilter)
        for name in self.verifiers:
            if name in ("clip", "tiny-clip"):
                _bad("scoring.verifiers", "CLIP is scored by annotation.clip = true (its column is clip_score): "
                     "leave it out of this list", name)
            if name not in VERIFIERS + STAND_INS:
                _bad("scoring.verifiers", f"names verifiers among {', '.join(VERIFIERS)} (offline stand-ins: "
                     f"{', '.join(STAND_INS)})", name)
            if name == "learned" and not self.learned_checkpoint:
                _bad("scoring.verifiers", "learned needs scoring.learned_checkpoint (goldennoise train --kind verifier)",
                     name)
            if name == "digits" and self.model != "digits":
                _bad("scoring.verifiers", "digits scores the digits model's images only", name)
        if len(set(map(verifier_of, self.verifiers))) != len(self.verifiers):
            _bad("scoring.verifiers", "names each verifier once (a stand-in and its real weights are one verifier)",
                 list(self.verifiers))
        if self.prefilter not in METHODS and not (
                self.prefilter.startswith("verifier:")
                and self.prefilter.split(":", 1)[1] in {verifier_of(v) for v in self.verifiers}):
            _bad("prefilter.method", "must be clip, selector or verifier:<name> of a verifier in scoring.verifiers",
                 self.prefilter)
        if (self.noise_source == "model") != (self.noise_checkpoint is not None):
            _bad("noise.checkpoint", "is needed by noise.source = \"model\" and by nothing else", self.noise_checkpoint)
        if self.learned_checkpoint and "learned" not in self.verifiers:
            _bad("scoring.learned_checkpoint", "is used only when scoring.verifiers names learned",
                 self.learned_checkpoint)
        if self.noise_pairing == "same_seed":
            if self.noise_source == "seed":
                _bad("noise.pairing", "same_seed needs a noise source (noise.source = \"redenoise\" or \"model\")",
                     self.noise_pairing)
            if self.batch_size != 2:
                _bad("seeds.batch_size", "must be 2 with noise.pairing = \"same_seed\" (one seed's two images, "
                     "side by side: each annotator answers a prompt's pair once)", self.batch_size)
            if self.noise_share != 0.5:
                _bad("noise.share", "is 0.5 with noise.pairing = \"same_seed\" (one of each seed's two images is "
                     "from the source)", self.noise_share)
        if self.noise_source != "seed" and not 1 <= int(self.noise_share * self.batch_size + 0.5) < self.batch_size:
            _bad("noise.share", f"must give every batch of {self.batch_size} at least one candidate from the source "
                 f"and one plain seed to compare it with (share x batch size, rounded, in 1..{self.batch_size - 1})",
                 self.noise_share)
        if self.noise_source != "seed" and self.candidates:
            _bad("noise.source", "cannot be combined with a pre-filter yet (prefilter.candidates = 0): the pre-filter "
                 "would choose between the sources and the comparison would be biased", self.noise_source)
        if self.show_clip_pick_after and not self.clip:
            _bad("annotation.show_clip_pick_after", "needs annotation.clip = true", self.show_clip_pick_after)
        return self

    @property
    def public_model(self) -> str:
        """The model as annotators may see it: a local folder by its name only, never its path."""
        if self.model.startswith(("/", ".", "~")) or "\\" in self.model:
            return Path(self.model).name + " (a local folder)"
        return self.model

    def allows(self, annotator: str) -> bool:
        return not self.annotators or identity(annotator) in {identity(a) for a in self.annotators}

    @property
    def guidelines_sha256(self) -> str | None:
        return hashlib.sha256(self.guidelines.encode()).hexdigest() if self.guidelines else None

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

    def resolved(self, spec, prompts_sha256: str, prompt_count: int) -> "Campaign":
        """Model defaults filled in from `spec` (a ModelSpec) and the prompt list's hash recorded."""
        values = {name: getattr(spec, name) for name in GENERATION[:-1] if getattr(self, name) is None}
        resolved = replace(self, **values, prompts_sha256=prompts_sha256).check()
        if resolved.seed_strategy == "sequential":  # the last prompt's seeds must exist too
            needed = prompt_count * max(resolved.batch_size, resolved.candidates)
            if resolved.start_seed + needed - 1 > MAX_SEED:
                raise CampaignError(f"campaign seeds.start: with {prompt_count} prompts the sequential seeds would "
                                    f"pass 2^63-1; choose a start of at most {MAX_SEED + 1 - needed}.", "seeds.start")
        return resolved

    def switched(self, changes: dict) -> "Campaign":
        """The campaign an administrator's switch makes: `changes` applied (field name -> value, None for "the
        model's default"); when the model changes, every generation value not in `changes` goes back to the new
        model's default. The one rule for the Settings form, `/switch_campaign` and `/init_model`."""
        unknown = sorted(set(changes) - set(SETTINGS))
        if unknown:
            raise CampaignError(f"campaign: {unknown[0]!r} is not a campaign setting; known: "
                                f"{', '.join(SETTINGS)}.", unknown[0])
        values = dict(changes)
        if "model" in values and values["model"] != self.model:
            for name in GENERATION:
                values.setdefault(name, None)
        if "annotators" in values and isinstance(values["annotators"], list):
            values["annotators"] = tuple(values["annotators"])
        return replace(self, **values, prompts_sha256=None).check()

    def to_toml(self) -> str:
        lines = [f"name = {_toml(self.name)}"]
        for section in SECTIONS:
            lines.append(f"\n[{section}]")
            for key, name in SECTIONS[section].items():
                value = getattr(self, name)
                if value is not None and not (name == "guidelines" and not value):
                    lines.append(f"{key} = {_toml(list(value) if isinstance(value, tuple) else value)}")
        return "\n".join(lines) + "\n"


def verifier_of(name: str) -> str:
    """The verifier a campaign's scorer name stands for ("tiny-pickscore" is PickScore's offline stand-in)."""
    return name.removeprefix("tiny-")


def _bad(key: str, rule: str, value) -> None:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "…"
    raise CampaignError(f"campaign {key}: {rule}, got {shown}.", key)


def _check(key: str, rule: Rule, value) -> None:
    """The one check of a value against its rule (CampaignError naming `key`)."""
    if value is None and rule.optional:
        return
    if rule.kind in ("int", "float"):
        ok_type = (isinstance(value, int) if rule.kind == "int" else isinstance(value, (int, float)))
        span = f"{rule.low:g}..{rule.high:g}" if rule.kind == "float" else f"{int(rule.low)}..{int(rule.high)}"
        what = "a whole number" if rule.kind == "int" else "a number"
        if isinstance(value, bool) or not ok_type or not rule.low <= value <= rule.high:
            _bad(key, f"must be {what} in {span}", value)
        if rule.multiple > 1 and value % rule.multiple:
            _bad(key, f"must be a multiple of {rule.multiple}", value)
    elif rule.kind == "bool":
        if not isinstance(value, bool):
            _bad(key, "must be true or false", value)
    elif rule.kind == "choice":
        if value not in rule.choices:
            _bad(key, f"must be one of {', '.join(rule.choices)}", value)
    elif rule.kind == "identifier":
        if not isinstance(value, str) or not value.isidentifier() or len(value) > rule.max_length:
            _bad(key, "must be a class name", value)
    elif rule.kind == "text":
        if not isinstance(value, str) or not rule.low <= len(value.strip() if rule.low else value) <= rule.high:
            _bad(key, f"must be text of {int(rule.low)}..{int(rule.high)} characters", value)
    elif rule.kind == "names":
        if not isinstance(value, tuple) or not all(isinstance(a, str) and rule.low <= len(a) <= rule.high
                                                   for a in value):
            _bad(key, f"must be a list of names ({int(rule.low)}..{int(rule.high)} characters)", value)


SETTINGS = {f.name: f.metadata for f in fields(Campaign) if "rule" in f.metadata}  # field -> metadata, file order
SECTIONS: dict[str, dict[str, str]] = {}  # TOML section -> {key: field}
for _name, _meta in SETTINGS.items():
    if "." in _meta["key"]:
        _section, _key = _meta["key"].split(".")
        SECTIONS.setdefault(_section, {})[_key] = _name
FILE_KEYS = {"guidelines": "file"}  # sections whose text may come from a file named relative to the TOML


@functools.lru_cache(maxsize=64)  # every record carries the id: hash the definition once per campaign
def _campaign_id(campaign: Campaign, prompts_sha256: str) -> str:
    key = {k: v for k, v in campaign.definition().items() if k not in ("prompts", "annotators")}
    # Settings added after 0.2 enter the hash only when used: older campaigns keep their ids.
    for name, default in (("guidelines", ""), ("show_clip_pick_after", False), ("verifiers", []),
                          ("noise_source", "seed"), ("noise_share", 0.5), ("noise_guidance_scale", None),
                          ("noise_inversion_guidance_scale", None), ("noise_checkpoint", None),
                          ("learned_checkpoint", None), ("noise_pairing", "mixed")):
        if key[name] == default:
            del key[name]
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


def reference() -> str:
    """The campaign file's reference as a Markdown table (the README's, checked by a test): every key, its default,
    its flag and what it means, in file order."""
    rows = ["| key | default | flag | meaning |", "|---|---|---|---|"]
    defaults = Campaign()
    for name, meta in SETTINGS.items():
        value = getattr(defaults, name)
        shown = "(the model's)" if value is None and meta["rule"].optional else \
            "[]" if value == () else "\"\"" if value == "" else _toml(value)
        flag = meta["flag"] or ""
        if meta["invert"]:
            flag += " (sets false)"
        meaning = meta["help"].replace("|", "\\|")  # a table cell
        shown_flag = f"`{flag}`" if flag else ""
        rows.append(f"| `{meta['key']}` | `{shown}` | {shown_flag} | {meaning} |")
    rows.append("| `guidelines.file` | | | instead of `guidelines.text`: a Markdown file, relative to the campaign file |")
    return "\n".join(rows)


def from_mapping(data: dict, base: Path | None = None) -> Campaign:
    """A Campaign from parsed TOML, refusing unknown sections and keys (relative paths are relative to `base`)."""
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
            if key == FILE_KEYS.get(section):
                values[SECTIONS[section]["text"]] = _read_text_file(section, value, base)
                continue
            if key not in SECTIONS[section]:
                known = list(SECTIONS[section]) + ([FILE_KEYS[section]] if section in FILE_KEYS else [])
                raise CampaignError(f"campaign [{section}]: unknown key {key!r}; known: {', '.join(known)}.",
                                    f"{section}.{key}")
            values[SECTIONS[section][key]] = value
    for name in [n for n, meta in SETTINGS.items() if meta["rule"].kind == "names" and n in values]:
        if not isinstance(values[name], list):
            raise CampaignError(f"campaign {SETTINGS[name]['key']}: must be a list of names.", SETTINGS[name]["key"])
        values[name] = tuple(values[name])
    for name in ("scheduler", "revision"):
        if values.get(name) == "":
            values[name] = None
    if base is not None and isinstance(values.get("prompts"), str) and not Path(values["prompts"]).is_absolute():
        values["prompts"] = str(base / values["prompts"])
    return Campaign(**values).check()


def from_definition(data: dict) -> Campaign:
    """The Campaign a stored definition (`Campaign.definition()` through JSON) describes: its list settings back to
    tuples; keys this version does not know (the id, a newer setting) are left out."""
    values = {k: v for k, v in data.items() if k in SETTINGS or k == "prompts_sha256"}
    for name in [n for n, meta in SETTINGS.items() if meta["rule"].kind == "names" and n in values]:
        values[name] = tuple(values[name] or ())
    return Campaign(**values)


def read_guidelines(path: str | Path) -> str:
    """The text of a guidelines file named on the command line (CampaignError naming guidelines.file)."""
    return _read_text_file("guidelines", str(path), None)


def _read_text_file(section: str, name, base: Path | None) -> str:
    key = f"{section}.{FILE_KEYS[section]}"
    if not isinstance(name, str) or not name:
        raise CampaignError(f"campaign {key}: must be the path of a text file.", key)
    path = Path(name) if Path(name).is_absolute() or base is None else base / name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise CampaignError(f"campaign {key}: cannot read {Path(name).name!r} ({reason}).", key) from None
    if len(text) > MAX_GUIDELINES:
        raise CampaignError(f"campaign {key}: {len(text)} characters; the limit is {MAX_GUIDELINES}.", key)
    return text


def load(path: str | Path) -> Campaign:
    """Read a campaign TOML file (relative paths are relative to the file)."""
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
    return load_prompts(campaign.prompts, MAX_CAMPAIGN_FILE_BYTES)  # the administrator's own file: larger


def prompts_sha256(prompt_set: PromptSet) -> str:
    """The hash of a prompt list's content (texts, ids, metadata; not the file's path) that campaign ids carry."""
    digest = hashlib.sha256(b"[")
    for i, p in enumerate(prompt_set.prompts):  # the JSON text of the list of rows, written piece by piece
        row = json.dumps({"text": p.text, "id": p.id, "metadata": p.metadata}, sort_keys=True, ensure_ascii=False)
        digest.update(((", " if i else "") + row).encode())
    digest.update(b"]")
    return digest.hexdigest()


def folder(outputs: str | Path, campaign_id: str) -> Path:
    return Path(outputs) / CAMPAIGNS_DIR / campaign_id


def write(outputs: str | Path, campaign: Campaign, prompt_set: PromptSet | None) -> Path:
    """Write the resolved campaign, its TOML and its prompt list under `<outputs>/campaigns/<id>/` (once)."""
    target = folder(outputs, campaign.id)
    target.mkdir(parents=True, exist_ok=True)
    definition = json.dumps({"id": campaign.id, **campaign.definition()}, indent=1, sort_keys=True)
    existing = target / "campaign.json"
    if not existing.exists():
        if prompt_set is not None:
            _atomic(target / "prompts.jsonl", "".join(
                json.dumps({"index": p.index, "id": p.id, "text": p.text, "metadata": p.metadata,
                            "metadata_sha256": p.metadata_sha256}, ensure_ascii=False) + "\n"
                for p in prompt_set.prompts))
        _atomic(target / "campaign.toml", campaign.to_toml())
        if campaign.guidelines:
            _atomic(target / "guidelines.md", campaign.guidelines)
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
