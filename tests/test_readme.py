"""The README tells the research lead the truth: its campaign example and reference match the campaign's definition."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from goldennoise.store import campaign as campaigns

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_the_campaign_reference_is_the_one_the_code_makes():
    shown = README.split("<!-- campaign-reference -->\n")[1].split("\n<!-- /campaign-reference -->")[0]
    assert shown == campaigns.reference()  # regenerate: python -c "from goldennoise.store.campaign import reference"


def test_every_key_of_the_example_exists_and_every_key_is_documented():
    example = README.split("### A campaign\n\n```toml\n")[1].split("```")[0]
    data = tomllib.loads(example)
    named = {"name"} | {f"{section}.{key}" for section, keys in data.items() if isinstance(keys, dict) for key in keys}
    known = {meta["key"] for meta in campaigns.SETTINGS.values()} | {"guidelines.file"}
    assert named <= known, named - known
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", README, flags=re.M))
    assert known <= documented, known - documented
    text = data.pop("guidelines")
    assert text == {"file": "guidelines.md"}
    campaigns.from_mapping({**data, "guidelines": {"text": "Golden: sharp."}})  # the rest is a valid campaign
