"""The store as it stands now: undos honoured, relabels superseding, second opinions kept.

The file is append-only, so an undo is a later "retraction" line and a relabel a
later judgement with `supersedes`. `live` gives what counts: answers (judgements,
pairwise, skips) neither retracted nor superseded. Only an annotator's own lines
can retract or supersede their answers: a line naming someone else's record is
ignored here whatever wrote it (the app refuses to write one). A judgement with
`second_opinion_of` supersedes nothing: both annotators' judgements count.
"""

from __future__ import annotations

from goldennoise.store.schema import ANSWER_KINDS


def live(records: list) -> list:
    """Answers that count, in file order.

    One annotator's judgement counts once: of two relabels of the same record (made in two tabs), of two
    second opinions on the same record, or of two judgements of the same batch by one annotator however they
    were written (a script judging twice, a second opinion on a second opinion of your own answer), the later
    replaces the earlier.
    """
    owner = {r.record_id: r.annotator for r in records}
    retracted = {r.retracts for r in records if r.kind == "retraction" and owner.get(r.retracts) == r.annotator}
    answers = [r for r in records if r.kind in ANSWER_KINDS and r.record_id not in retracted]
    superseded = {r.supersedes for r in answers
                  if getattr(r, "supersedes", None) and owner.get(r.supersedes) == r.annotator}
    latest: dict[tuple, str] = {}
    for r in answers:
        if r.record_id in superseded:
            continue
        keys = []
        if getattr(r, "supersedes", None):
            keys.append(("relabel", r.annotator, r.supersedes))
        elif getattr(r, "second_opinion_of", None):
            keys.append(("second", r.annotator, r.second_opinion_of))
        if r.kind == "judgement" and getattr(r, "batch_id", None):
            keys.append(("batch", r.annotator, r.batch_id))
        for key in keys:
            if key in latest and latest[key] != r.record_id:
                superseded.add(latest[key])
            latest[key] = r.record_id
    return [r for r in answers if r.record_id not in superseded]


def in_campaign(records: list, campaign: str | None) -> list:
    """The records of one campaign (None: records made before campaigns existed)."""
    return [r for r in records if r.campaign == campaign]


def answered(records: list, annotator: str, kinds=("judgement", "skip")) -> dict[str, str]:
    """prompt id -> "judged" / "skipped" for one annotator's live answers of `kinds` (last answer wins)."""
    status: dict[str, str] = {}
    for record in live(records):
        if record.annotator == annotator and record.kind in kinds:
            status[record.prompt.id] = "skipped" if record.kind == "skip" else "judged"
    return status


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


def history_rows(records: list, annotator: str | None = None, text: str = "", limit: int = 500) -> list[dict]:
    """Rows for browsing answers, newest first; `annotator` None means everyone's. `golden`: a list of seeds."""
    text = text.strip().lower()
    rows = []
    for record in reversed(live(records)):
        if annotator is not None and record.annotator != annotator:
            continue
        if text and text not in record.prompt.text.lower():
            continue
        golden = getattr(record, "golden_seeds", [])
        if record.kind == "pairwise":
            p = record.preference
            golden = {"left": [p.left], "right": [p.right]}.get(p.winner, [])
        rows.append({"answer": answer_text(record), "golden": [int(s) for s in golden],
                     "time": record.created_at.replace("T", " ")[:19], "prompt": record.prompt.text,
                     "annotator": record.annotator, "model": record.model.name or record.model.id or "",
                     "record_id": record.record_id})
        if len(rows) == limit:
            break
    return rows
