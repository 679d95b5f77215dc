"""The store as it stands now: undo retractions honoured, relabels superseding.

The file is append-only, so an undo is a later "retraction" line and a relabel a
later judgement with `supersedes`. Readers call `live` to get what counts:
answers (judgements, pairwise, skips) that were neither retracted nor superseded
by a live answer. Retracting a relabel brings the earlier judgement back.
"""

from __future__ import annotations

from goldennoise.records import Record

ANSWER_KINDS = ("judgement", "pairwise", "skip")


def live(records: list[Record]) -> list[Record]:
    """Answers that count, in file order."""
    retracted = {r.retracts for r in records if r.kind == "retraction"}
    answers = [r for r in records if r.kind in ANSWER_KINDS and r.record_id not in retracted]
    superseded = {r.supersedes for r in answers if r.supersedes}
    return [r for r in answers if r.record_id not in superseded]


def prompt_status(records: list[Record], annotator: str, model_name: str) -> dict[str, str]:
    """prompt text -> "judged" or "skipped", for one annotator on one model (last answer wins)."""
    status: dict[str, str] = {}
    for record in live(records):
        if record.annotator == annotator and record.model.get("name") == model_name:
            status[record.prompt["text"]] = "skipped" if record.kind == "skip" else "judged"
    return status


def verdict(golden: list[int], shown: list[int]) -> str:
    """"none_golden", "all_golden" or "some_golden" for a judgement."""
    if not golden:
        return "none_golden"
    return "all_golden" if len(golden) == len(shown) else "some_golden"


def table(records: list[Record], text: str = "", model: str = "", limit: int = 500) -> list[dict]:
    """Rows for browsing answers, newest first, filtered by prompt substring and model name."""
    text = text.strip().lower()
    rows = []
    for record in reversed(live(records)):
        if text and text not in record.prompt["text"].lower():
            continue
        if model and record.model.get("name") != model:
            continue
        answer = record.verdict or record.kind
        if record.kind == "pairwise":
            answer = f"pairwise: {record.preference['winner']}"
        rows.append({
            "time": record.created_at.replace("T", " ")[:19],
            "annotator": record.annotator,
            "prompt": record.prompt["text"],
            "model": record.model.get("name", ""),
            "answer": answer,
            "golden": len(record.golden_seeds),
            "shown": len(record.seeds),
            "record_id": record.record_id,
        })
        if len(rows) == limit:
            break
    return rows
