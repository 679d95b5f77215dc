"""The campaign's settings as a form and as keyword arguments: derived from the one definition (`store.campaign`).

`FIELDS` lists what the Settings form shows and `/init_model` and `/switch_campaign`
take (name, the widget it needs, its choices, its help); `changes` turns values from
a form or an API call into the changes a switch applies (`Campaign.switched`): text
as typed, whole numbers from number boxes or digit strings (seeds stay exact to
2^63-1), empty optional values meaning "the model's default". A value equal to the
running campaign's is no change, so a form sent back untouched switches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from goldennoise.errors import CampaignError
from goldennoise.generation import models
from goldennoise.store.campaign import GENERATION, METHODS, SETTINGS, STAND_INS, VERIFIERS, Campaign

# What `/init_model` takes: a model and its generation parameters (the design's "load a model with its parameters").
MODEL_FIELDS = ("model", "revision", "dtype", *GENERATION, "clip", "verifiers")


@dataclass(frozen=True)
class Field:
    name: str  # the campaign attribute, and the keyword
    key: str  # section.key in the campaign file
    label: str
    help: str
    widget: str  # "text", "textarea", "number", "integer", "seed", "checkbox", "dropdown", "model"
    choices: tuple = ()
    optional: bool = False
    python_type: object = str


def _field(name: str, meta: dict) -> Field:
    rule = meta["rule"]
    widget = {"int": "integer", "float": "number", "bool": "checkbox", "choice": "dropdown", "identifier": "text",
              "text": "text", "names": "names"}[rule.kind]
    widget = {"seed": "seed", "textarea": "textarea", "dropdown": "model", "method": "model",
              "verifiers": "names"}.get(rule.widget, widget)
    kind = {"int": int, "float": float, "bool": bool, "names": list[str]}.get(rule.kind, str)
    choices = rule.choices or {"dropdown": tuple(models.KNOWN_MODELS), "method": METHODS + tuple(
        f"verifier:{v}" for v in VERIFIERS)}.get(rule.widget, ())
    if rule.widget == "verifiers":
        choices = VERIFIERS + STAND_INS
    label = meta["key"].replace(".", " · ").replace("_", " ")
    return Field(name, meta["key"], label, meta["help"], widget, choices, rule.optional, kind)


FIELDS = [_field(name, meta) for name, meta in SETTINGS.items() if meta["form"]]
BY_NAME = {f.name: f for f in FIELDS}


def value_of(campaign: Campaign, field: Field):
    """A field's value as the form shows it (seeds as text: a number box would round them)."""
    value = getattr(campaign, field.name)
    if field.widget == "names":
        return list(value)
    return str(value) if field.widget == "seed" and value is not None else value


def _whole(value, f: Field):
    if isinstance(value, bool):
        raise CampaignError(f"campaign {f.key}: must be a whole number, got {value!r}.", f.key)
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise CampaignError(f"campaign {f.key}: must be a whole number, got {value[:40]!r}.", f.key)
        return int(text)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    raise CampaignError(f"campaign {f.key}: must be a whole number, got {value!r}.", f.key)


def parse(f: Field, value):
    """A form or API value as the campaign holds it (checked later by the campaign's own rule)."""
    if value is None or (isinstance(value, str) and not value.strip() and f.widget != "textarea"):
        if f.optional:
            return None
        if f.widget in ("text", "model"):
            return ""
        raise CampaignError(f"campaign {f.key}: needs a value.", f.key)
    if f.python_type is int:
        return _whole(value, f)
    if f.python_type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise CampaignError(f"campaign {f.key}: must be a number, got {value!r}.", f.key)
        try:
            return float(value)
        except ValueError:
            raise CampaignError(f"campaign {f.key}: must be a number, got {value[:40]!r}.", f.key) from None
    if f.widget == "names":  # a multiselect (list) or text with commas
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            raise CampaignError(f"campaign {f.key}: a list of names, got {value!r}.", f.key)
        return tuple(v.strip() for v in items if v.strip())
    if f.python_type is bool:
        if not isinstance(value, bool):
            raise CampaignError(f"campaign {f.key}: must be true or false, got {value!r}.", f.key)
        return value
    if not isinstance(value, str):
        raise CampaignError(f"campaign {f.key}: must be text, got {type(value).__name__}.", f.key)
    if f.name == "scheduler" and value.strip() == "default":
        return None
    return value if f.widget == "textarea" else value.strip()


def changes(current: Campaign, values: dict) -> dict:
    """{setting: new value} for the values that differ from the running campaign (unknown names refused)."""
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise CampaignError(f"campaign: {unknown[0]!r} is not a setting here; known: {', '.join(BY_NAME)}.",
                            unknown[0])
    found = {}
    for name, raw in values.items():
        value = parse(BY_NAME[name], raw)
        if value != getattr(current, name):
            found[name] = value
    return found


def model_defaults(model) -> dict | None:
    """A known model's own generation defaults (the known list only: never the disk or the hub)."""
    spec = models.KNOWN_MODELS.get(model) if isinstance(model, str) else None
    if spec is None:
        return None
    return {name: getattr(spec, name) for name in GENERATION[:-1]}
