"""Prompt files in four formats, and malformed ones that must say what is wrong where."""

import json

import pytest

from goldennoise.errors import PromptFileError
from goldennoise.store.prompts import MAX_CAMPAIGN_FILE_BYTES, MAX_FILE_BYTES, load_prompts, parse_prompts

GOOD = {
    "p.csv": b'id,prompt,style\nA1,"a cat, sitting",photo\nA2,a dog,anime\n,,\nA3,a cat sitting,\n',
    "p.json": json.dumps([{"prompt": "a cat, sitting", "style": "photo", "id": "A1"}, "a dog", "", "a cat sitting"]).encode(),
    "p.jsonl": b'{"prompt": "a cat, sitting", "id": "A1"}\n"a dog"\n\n{"prompt": "a cat sitting"}\n',
    "p.txt": b"a cat, sitting\na dog\n   \na cat sitting\n",
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_formats_give_the_same_prompts(name):
    result = parse_prompts(GOOD[name], name)
    assert [p.text for p in result.prompts] == ["a cat, sitting", "a dog", "a cat sitting"]
    assert [p.index for p in result.prompts] == [0, 1, 2]
    assert all(p.source == name for p in result.prompts)


def test_csv_keeps_other_columns_and_ids():
    first = parse_prompts(GOOD["p.csv"], "p.csv").prompts[0]
    assert first.id == "A1" and first.metadata == {"id": "A1", "style": "photo"}


def test_duplicates_and_empties_are_reported():
    result = parse_prompts(b"a\n\nb\na\n  a  \n", "d.txt")
    assert [p.text for p in result.prompts] == ["a", "b"]
    assert result.duplicates == ["a", "a"] and result.empty == 1
    assert "2 duplicate(s) dropped" in result.summary() and "1 empty entry dropped" in result.summary()


def test_ids_are_stable_without_an_id_column():
    a = parse_prompts(b"a cat\na dog\n", "x.txt").prompts
    b = parse_prompts(b"a dog\na cat\n", "y.txt").prompts
    assert a[0].id == b[1].id and a[0].id != a[1].id


@pytest.mark.parametrize(
    "name,data,message",
    [
        ("bad.json", b'[\n  "a",\n  "b"\n  "c"\n]', r"bad\.json, line 4 column 3: invalid JSON"),
        ("bad.json", b'[{"text": "a"}]', r'item 0: object has no "prompt" field \(fields: text\)'),
        ("bad.json", b'[{"prompt": 5}]', r'item 0: "prompt" must be a string, got int'),
        ("bad.json", b'{"a": 1}', r"expected a JSON list"),
        ("bad.json", b"[" * 100000, r"nested too deeply|invalid JSON"),
        ("bad.jsonl", b'"a"\n{"prompt": "b"}\n{oops}\n', r"bad\.jsonl, line 3: invalid JSON"),
        ("bad.jsonl", b'"a"\n[1, 2]\n', r"line 2: expected a string or an object"),
        ("bad.csv", b"text,style\na,b\n", r"line 1: no 'prompt' column in the header \(columns: text, style\)"),
        ("bad.csv", b"prompt\na\nb,extra\n", r"line 3: more fields than header columns"),
        ("bad.txt", b"caf\xe9\nok\n", r"line 1: not UTF-8 text"),
        ("bad.txt", b"a\x00b\x00\x01", r"binary file"),
        ("bad.txt", b"\n \n", r"no prompts found"),
        ("bad.txt", b"x" * 5000, r"line 1: prompt is 5000 characters"),
        ("prompts.xlsx", b"PK\x03\x04", r"unsupported file type"),
    ],
)
def test_malformed_files_say_where(name, data, message):
    with pytest.raises(PromptFileError, match=message):
        parse_prompts(data, name)


def test_oversized_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(PromptFileError, match="limit is 20 MiB"):
        load_prompts(path)


def test_missing_file(tmp_path):
    with pytest.raises(PromptFileError, match="cannot read"):
        load_prompts(tmp_path / "nope.csv")


def test_shipped_sample_set():
    from pathlib import Path

    result = load_prompts(Path(__file__).parent.parent / "prompts" / "sample.csv")
    assert len(result.prompts) == 30 and not result.duplicates
    assert len({p.metadata["category"] for p in result.prompts}) >= 10


def test_unreadable_text_and_numbers_are_refused_with_the_place():
    with pytest.raises(PromptFileError, match="lone surrogate"):
        parse_prompts(b'["a \\ud800 b"]', "s.json")
    with pytest.raises(PromptFileError, match="unreadable JSON"):
        parse_prompts(b'[{"prompt": "x", "n": ' + b"1" * 5000 + b"}]", "n.json")
    prompts = parse_prompts("an \x1b[31mescaped\x07 prompt\n".encode(), "c.txt").prompts
    assert prompts[0].text == "an [31mescaped prompt"


def test_a_campaigns_own_file_may_be_larger_than_an_upload(tmp_path):
    """An upload through the app stops at 20 MiB; the administrator's campaign file (500k prompts for a million
    answers are 25 MiB) is read up to 1 GiB."""
    from goldennoise.store.campaign import Campaign, load_prompt_set

    path = tmp_path / "big.txt"
    line = "a prompt long enough to make a large campaign file quickly, number "
    with open(path, "w") as handle:
        for i in range(MAX_FILE_BYTES // len(line) + 1000):
            handle.write(f"{line}{i}\n")
    with pytest.raises(PromptFileError, match="limit is 20 MiB"):
        load_prompts(path)
    assert MAX_CAMPAIGN_FILE_BYTES >= 1024 ** 3
    assert len(load_prompt_set(Campaign(prompts=str(path))).prompts) > 300_000
