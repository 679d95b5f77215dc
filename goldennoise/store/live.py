"""What counts: undos honoured, relabels superseding, second opinions kept. One definition of the rules.

The store is append-only, so an undo is a later "retraction" line and a relabel a
later judgement with `supersedes`. `live` gives what counts: answers (judgements,
pairwise, skips) neither retracted nor superseded. Only an annotator's own lines
can retract or supersede their answers (annotators compared by identity, see
`names.py`): a line naming someone else's record is ignored here whatever wrote it.
A judgement with `second_opinion_of` supersedes nothing: both annotators' judgements
count. One annotator's judgement counts once: of two relabels of the same record, of
two second opinions on the same record, or of two judgements of the same batch by
one annotator however they were written, the later replaces the earlier.

The rules only ever link records of one annotator that share a batch (a relabel and
a second opinion are made on the batch of the record they name), so the database
keeps a `live` flag per record and recomputes it for one such group at a time
(`group_key`), with `live_ids` — the same function `live` uses on a list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from goldennoise.store.names import identity

ANSWER_KINDS = ("judgement", "pairwise", "skip")


@dataclass(frozen=True)
class Link:
    """What the rules read of a record."""

    record_id: str
    kind: str
    annotator: str  # identity
    batch_id: str | None = None
    retracts: str | None = None
    supersedes: str | None = None
    second_opinion_of: str | None = None


def link(record) -> Link:
    """The rules' view of a record (a schema model)."""
    return Link(record.record_id, record.kind, identity(record.annotator), getattr(record, "batch_id", None),
                getattr(record, "retracts", None), getattr(record, "supersedes", None),
                getattr(record, "second_opinion_of", None))


def live_ids(links: Iterable[Link]) -> set[str]:
    """Record ids of the answers that count, among `links` given in file order."""
    links = list(links)
    owner = {r.record_id: r.annotator for r in links}
    retracted = {r.retracts for r in links if r.kind == "retraction" and owner.get(r.retracts) == r.annotator}
    answers = [r for r in links if r.kind in ANSWER_KINDS and r.record_id not in retracted]
    superseded = {r.supersedes for r in answers if r.supersedes and owner.get(r.supersedes) == r.annotator}
    latest: dict[tuple, str] = {}
    for r in answers:
        if r.record_id in superseded:
            continue
        keys = []
        if r.supersedes:
            keys.append(("relabel", r.annotator, r.supersedes))
        elif r.second_opinion_of:
            keys.append(("second", r.annotator, r.second_opinion_of))
        if r.kind == "judgement" and r.batch_id:
            keys.append(("batch", r.annotator, r.batch_id))
        for key in keys:
            if key in latest and latest[key] != r.record_id:
                superseded.add(latest[key])
            latest[key] = r.record_id
    return {r.record_id for r in answers if r.record_id not in superseded}


def live(records: list) -> list:
    """Answers that count, in file order."""
    counted = live_ids(link(r) for r in records)
    return [r for r in records if r.record_id in counted]


def group_key(campaign: str | None, annotator: str, batch_id: str | None, record_id: str) -> str:
    """The group a record's live status is decided in: one annotator's records of one batch (else the record)."""
    anchor = f"b:{batch_id}" if batch_id else f"r:{record_id}"
    return hashlib.sha256(f"{campaign or ''}\x00{identity(annotator)}\x00{anchor}".encode()).hexdigest()


def in_campaign(records: list, campaign: str | None) -> list:
    """The records of one campaign (None: records made before campaigns existed)."""
    return [r for r in records if r.campaign == campaign]


def verdict(golden: list[int], shown: list[int]) -> str:
    """"none_golden", "all_golden" or "some_golden" for a judgement."""
    if not golden:
        return "none_golden"
    return "all_golden" if len(golden) == len(shown) else "some_golden"


def answer_text(record) -> str:
    if record.kind == "pairwise":
        return f"pairwise: {record.preference.winner.replace('_', ' ')}"
    if record.kind == "judgement":
        return record.verdict.replace("_", " ")
    return record.kind


def history_row(record) -> dict:
    """One History row: answer, golden seeds (a pairwise winner's seed), time, prompt, annotator, model, id."""
    golden = getattr(record, "golden_seeds", [])
    if record.kind == "pairwise":
        p = record.preference
        golden = {"left": [p.left], "right": [p.right]}.get(p.winner, [])
    return {"answer": answer_text(record), "golden": [int(s) for s in golden],
            "time": record.created_at.replace("T", " ")[:19], "prompt": record.prompt.text,
            "annotator": record.annotator, "model": record.model.name or record.model.id or "",
            "kind": record.kind, "record_id": record.record_id}
