"""The record schema: one pydantic model per kind of line in `records.jsonl`.

A line is a judgement, a skip, a retraction (undo) or a pairwise answer. Every
record is validated when written and when read; a line that fails is reported with
its line number and skipped, never fatal. Schema 1 lines (GoldenNoise 0.1) and
schema 2 lines (0.2) are upgraded on read; a line from a newer schema is refused
with a message saying so. Schema 3 (0.3) adds `guidelines_sha256` and `feedback`,
and `session_id` is a derived id of the tab (never Gradio's live session hash).
`python -m goldennoise.store.schema` prints the JSON Schema shipped as
`record.schema.json`.

Seeds are int64 (0..2**63-1) and strict: a float or string seed is an error, not
rounded. Sub-blocks are typed: `Noise` (provenance of one seed's initial latents,
see generation/latents.py), `Sample` (one shown seed), `Preference`, `Prefilter`.
"""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints, TypeAdapter,
                      WithJsonSchema, model_serializer, model_validator)

SCHEMA_VERSION = 3
SCHEMA_FILE = Path(__file__).with_name("record.schema.json")
MAX_SEED = 2**63 - 1

Seed = Annotated[int, Field(ge=0, le=MAX_SEED, strict=True)]
Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
RecordId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]  # typed names: 64; logins: up to 200
Short = Annotated[str, StringConstraints(max_length=300)]


def _floats(value) -> array:
    """A list of numbers, held as a compact array of doubles (8 bytes a value rather than a float object each:
    fingerprints are most of a record's memory when the store holds many thousands)."""
    if isinstance(value, array) and value.typecode == "d":
        return value
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                                   for v in value):
        raise ValueError("expected a list of numbers")
    return array("d", value)


Floats = Annotated[Any, BeforeValidator(_floats), PlainSerializer(lambda a: a.tolist(), return_type=list[float]),
                   WithJsonSchema({"items": {"type": "number"}, "type": "array"})]


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fingerprint(Block):
    """Fixed-position values and moments of the draw, and values of the initial latents."""

    draw: Floats
    mean: float
    std: float
    latents: Floats


class NoiseSource(Block):
    """A noise made from the seed's draw instead of the draw itself (generation/noises.py), and how."""

    name: Literal["redenoise", "model"]
    share: Annotated[float, Field(ge=0, le=1)]  # the probability this candidate had of getting the source
    guidance_scale: float | None = None  # redenoise: its steps' parameters
    inversion_guidance_scale: float | None = None
    num_inference_steps: int | None = None
    embedded_guidance: float | None = None
    checkpoint: Short | None = None  # model: the noise model's file name, and its content's hash
    checkpoint_sha256: Hex64 | None = None

    @model_validator(mode="after")
    def _what_makes_it(self):
        needed = (("guidance_scale", "inversion_guidance_scale", "num_inference_steps") if self.name == "redenoise"
                  else ("checkpoint_sha256",))
        missing = [n for n in needed if getattr(self, n) is None]
        if missing:
            raise ValueError(f"noise source {self.name}: needs {', '.join(missing)}")
        return self

    @model_serializer(mode="wrap")
    def _only_what_it_has(self, handler):
        return {k: v for k, v in handler(self).items() if v is not None}


class Noise(Block):
    """How one seed's initial latents were made: enough to re-make and verify them from the seed alone (and, with a
    `source`, from the kept noise whose hash `source_sha256` names)."""

    generator: Literal["cpu"]
    dtype: Literal["float32"]  # of the draw
    shape: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=4, max_length=4)]
    packing: Literal["flux-2x2", "flux2-flatten", "none"]
    scale: float
    pipeline_dtype: Literal["float32", "bfloat16", "float16"]
    sha256: Hex64  # of the float32 draw, little-endian
    family: Literal["flux1", "flux2", "sd", "sd3", "pixel"] | None = None  # None only in schema-1 records
    order: Short | None = None
    latents_shape: list[int] | None = None
    latents_sha256: Hex64 | None = None  # of the initial latents in pipeline_dtype (what prepare_latents returns)
    fingerprint: Fingerprint | None = None
    source: NoiseSource | None = None  # None: the seed's draw itself
    source_sha256: Hex64 | None = None  # of the made float32 noise, kept as <outputs>/noises/<aa>/<sha256>.npz

    @model_validator(mode="after")
    def _source_has_its_hash(self):
        if (self.source is None) != (self.source_sha256 is None):
            raise ValueError("noise: a source and its source_sha256 come together")
        return self

    @model_serializer(mode="wrap")
    def _seed_blocks_as_before(self, handler):
        """A seed's own draw writes no source keys: its line is what it was before sources existed."""
        data = handler(self)
        if self.source is None:
            data.pop("source", None)
            data.pop("source_sha256", None)
        return data


class Sample(Block):
    """One seed as the annotator saw it (or, in `Prefilter.hidden`, did not see it)."""

    seed: Seed
    golden: bool | None = None  # None in skips, pairwise answers and hidden candidates
    clip_score: float | None = None
    image_path: Short | None = None
    noise: Noise | None = None
    slot: Literal["ranked", "explore", "hidden"] | None = None  # pre-filtering: how it got on screen
    propensity: Annotated[float, Field(ge=0, le=1)] | None = None  # probability it was shown
    rank_score: float | None = None
    scores: dict[str, float] | None = None  # verifier name -> its score of the image (CLIP's is clip_score)


class PromptRef(Block):
    """The prompt as judged. Metadata lives once per campaign (`campaigns/<id>/prompts.jsonl`), hashed here."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    id: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    index: Annotated[int, Field(ge=0)]
    source: Short
    metadata_sha256: Hex64 | None = None
    metadata: dict[str, Any] | None = None  # schema-1 records carried it inline


class ModelInfo(Block):
    id: Short | None = None
    name: Short | None = None
    revision: Short | None = None
    dtype: Short | None = None
    pipeline_class: Short | None = None
    device: Short | None = None
    placement: Short | None = None


class Parameters(Block):
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None
    max_sequence_length: int | None = None
    scheduler: Short | None = None
    runtime: dict[str, Any] = Field(default_factory=dict)


class Preference(Block):
    left: Seed
    right: Seed
    winner: Literal["left", "right", "tie", "both_bad"]


class Prefilter(Block):
    method: Annotated[str, StringConstraints(pattern=r"^(clip|selector|verifier:[a-z0-9_-]{1,40})$")]
    candidates: int
    shown: int
    explore: int = 0
    hidden: list[Sample] = Field(default_factory=list)
    scores: dict[str, float] | None = None  # schema 1


class Base(Block):
    record_id: RecordId
    created_at: Short
    annotator: Name
    prompt: PromptRef
    campaign: Short | None = None
    session_id: Short = ""  # a derived, non-secret id of the tab (schema 3); Gradio's session hash before
    versions: dict[str, Any] = Field(default_factory=dict)
    schema_version: Literal[3] = SCHEMA_VERSION


class Shown(Base):
    """Fields of a record made on a batch that was on screen."""

    model: ModelInfo = Field(default_factory=ModelInfo)
    parameters: Parameters = Field(default_factory=Parameters)
    seeds: list[Seed] = Field(default_factory=list)  # in display order
    samples: list[Sample] = Field(default_factory=list)  # one per seed, same order
    seed_strategy: dict[str, Any] = Field(default_factory=dict)
    clip_model: dict[str, Any] | None = None
    timing: dict[str, Any] = Field(default_factory=dict)  # generated_at, shown_at, visible_ms, ...
    batch_id: Short | None = None
    view: Literal["batch", "pairwise"] | None = None  # the screen it was answered on (a skip can be either)
    shown_scores: bool | None = None  # were CLIP scores on screen before the answer?
    interaction: list[dict[str, Any]] = Field(default_factory=list, max_length=500)  # keys and clicks
    guidelines_sha256: Hex64 | None = None  # the campaign's guidelines the answer was made under
    feedback: Literal["clip_pick"] | None = None  # shown after each answer of the campaign (never before one)
    verifiers: dict[str, dict[str, Any]] | None = None  # verifier name -> the model id, revision, version that scored

    @model_validator(mode="after")
    def _samples_match_seeds(self):
        if [s.seed for s in self.samples] != list(self.seeds):
            raise ValueError("samples must list the seeds, in the same order")
        if len(set(self.seeds)) != len(self.seeds):
            # one seed twice only from two noises (a same-seed pair: its draw and a source's noise made from it)
            kinds = [(s.seed, s.noise.source.name if s.noise and s.noise.source else None) for s in self.samples]
            if len(set(kinds)) != len(kinds) or self.kind == "judgement":
                raise ValueError("seeds must be distinct (a seed twice only in a pairwise answer or skip, from two "
                                 "noise sources)")
        return self


class Judgement(Shown):
    """`golden_seeds` were chosen among `seeds`; the rest are `bad_seeds`."""

    kind: Literal["judgement"] = "judgement"
    golden_seeds: list[Seed] = Field(default_factory=list)
    bad_seeds: list[Seed] = Field(default_factory=list)
    verdict: Literal["none_golden", "some_golden", "all_golden"]
    supersedes: RecordId | None = None  # the annotator's own earlier judgement this relabel replaces
    second_opinion_of: RecordId | None = None  # another annotator's judgement this one re-judges (both count)
    prefilter: Prefilter | None = None

    @model_validator(mode="after")
    def _consistent(self):
        golden, shown = set(self.golden_seeds), list(self.seeds)
        if not shown:
            raise ValueError("a judgement needs the seeds it judged")
        if not golden <= set(shown):
            raise ValueError("golden_seeds must be among seeds")
        if list(self.bad_seeds) != [s for s in shown if s not in golden]:
            raise ValueError("bad_seeds must be the seeds not golden, in display order")
        expected = "none_golden" if not golden else "all_golden" if len(golden) == len(shown) else "some_golden"
        if self.verdict != expected:
            raise ValueError(f"verdict {self.verdict!r} does not match the seeds ({expected})")
        if any(s.golden != (s.seed in golden) for s in self.samples):
            raise ValueError("each sample's 'golden' must match golden_seeds")
        return self


class Skip(Shown):
    """The prompt was passed over: shown, not judged."""

    kind: Literal["skip"] = "skip"


class Pairwise(Shown):
    """Two seeds compared side by side."""

    kind: Literal["pairwise"] = "pairwise"
    preference: Preference
    supersedes: RecordId | None = None  # the annotator's own earlier pairwise answer this relabel replaces

    @model_validator(mode="after")
    def _pair_shown(self):
        if [self.preference.left, self.preference.right] != list(self.seeds):
            raise ValueError("preference must name the two seeds shown, left then right")
        return self


class Retraction(Base):
    """An undo: readers ignore the record named by `retracts`."""

    kind: Literal["retraction"] = "retraction"
    retracts: RecordId


Record = Annotated[Union[Judgement, Skip, Pairwise, Retraction], Field(discriminator="kind")]
RECORD = TypeAdapter(Record)
KINDS = ("judgement", "skip", "retraction", "pairwise")
ANSWER_KINDS = ("judgement", "pairwise", "skip")


class SchemaError(ValueError):
    """A line that is not a valid record; the message is short enough to show per line."""


def _upgrade_v1(data: dict) -> dict:
    """A schema-1 line (GoldenNoise 0.1) as a schema-2 record."""
    data = dict(data)
    kind = data.get("kind", "judgement")
    keep = {"record_id", "created_at", "annotator", "prompt", "session_id", "versions", "kind"}
    if kind == "retraction":
        keep |= {"retracts"}
    else:
        keep |= {"model", "parameters", "seeds", "samples", "seed_strategy", "clip_model", "timing"}
        keep |= {"judgement": {"golden_seeds", "bad_seeds", "verdict", "supersedes", "prefilter"},
                 "pairwise": {"preference"}}.get(kind, set())
    upgraded = {k: v for k, v in data.items() if k in keep and v is not None}
    upgraded["schema_version"] = 2
    if isinstance(upgraded.get("model"), dict):
        upgraded["model"] = {k: v for k, v in upgraded["model"].items() if k in ModelInfo.model_fields}
    prefilter = upgraded.get("prefilter")
    if isinstance(prefilter, dict):
        upgraded["prefilter"] = {**{k: v for k, v in prefilter.items() if k in Prefilter.model_fields},
                                 "hidden": [{k: v for k, v in h.items() if k in Sample.model_fields}
                                            for h in prefilter.get("hidden", [])]}
    return upgraded


def parse(data: Any):
    """A validated record from a decoded JSON line (schemas 1 and 2 upgraded), or SchemaError."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise SchemaError(f"expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise SchemaError(f"schema_version {version!r} is not a whole number")
    if version > SCHEMA_VERSION:
        raise SchemaError(f"written by a newer GoldenNoise (schema {version}; this one reads up to "
                          f"{SCHEMA_VERSION}): upgrade GoldenNoise to read it")
    try:
        if version < 2:
            data = _upgrade_v1(data)
        if version < 3:  # schema 3 only adds optional fields
            data = {**data, "schema_version": SCHEMA_VERSION}
        return RECORD.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise SchemaError(f"{where}: {first['msg']}"[:300]) from None
    except (TypeError, ValueError, AttributeError, KeyError) as error:  # a shape the upgrade cannot read
        raise SchemaError(f"not a record ({type(error).__name__})") from None


def parse_line(raw: bytes | str):
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, or a number too long to read
        raise SchemaError(f"not JSON ({error.__class__.__name__})") from None
    except RecursionError:
        raise SchemaError("JSON nested too deeply") from None
    return parse(data)


def dump(record) -> dict:
    """A record's JSON data: what its line in records.jsonl says."""
    return RECORD.dump_python(record, mode="json")


def json_schema() -> dict:
    return RECORD.json_schema()


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=1, sort_keys=True))
