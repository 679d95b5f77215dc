"""The annotation loop: join, show, answer (and get the next batch in the same call), undo, relabel.

Every function takes the process-wide `Engine` and one `Tab`, holds the tab's
lock (one request of a tab at a time: a double Enter is answered in order and the
second finds its batch gone) and returns plain data. An answer counts only for
the batch it names, only after the batch was on screen for the campaign's minimum
viewing time, and only once; it is refused politely otherwise and nothing is
written. A failed write (disk full) raises NotSaved and leaves the screen as it
was, so the annotator can retry. Undo retracts only this tab's own last answer;
relabelling someone else's judgement records a second opinion (both count).
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import replace

from goldennoise.annotation import answers
from goldennoise.annotation.engine import Engine
from goldennoise.annotation.tabs import MAX_UNDO, MODES, Screen, Tab, UndoEntry
from goldennoise.errors import Refused, UserError
from goldennoise.ids import utc_now
from goldennoise.store.live import in_campaign, live
from goldennoise.store.prompts import Prompt

log = logging.getLogger(__name__)
WINNERS = ("left", "right", "tie", "both_bad")
PREFETCH_AHEAD = 2  # batches made ahead per tab: one slow batch does not make the next answer wait


MAX_VISIBLE_MS = 86_400_000  # a day: a longer "viewing time" is not one


def short(value) -> str:
    """A value for an error message, never more than a line (inputs may be megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _check_mode(mode) -> str:
    if mode not in MODES:
        raise UserError(f"mode: {short(mode)} is not one of {', '.join(MODES)}.", "mode")
    return mode


def _visible(value) -> int | None:
    """The browser's viewing time: a whole number of milliseconds in 0..a day, or None when not given."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VISIBLE_MS:
        raise UserError(f"visible_ms: must be a whole number of milliseconds in 0..{MAX_VISIBLE_MS}, got "
                        f"{short(value)}.", "visible_ms")
    return value


def _sync(engine: Engine, tab: Tab) -> None:
    """A tab made on an older campaign starts afresh on the new one, told why."""
    if tab.epoch != engine.epoch:
        if tab.epoch:
            engine.active.assigner.release_tab(tab.tab_id)
            tab.reset(f"An administrator switched to campaign {engine.active.id}; you go on there.")
        tab.epoch = engine.epoch


def _joined(engine: Engine, tab: Tab) -> None:
    if not tab.annotator:
        raise UserError("annotator: say who you are first (Start, or the API's /start).", "annotator")
    _sync(engine, tab)


def join(engine: Engine, tab: Tab, annotator: str, is_admin: bool = False) -> Screen:
    """Identify the tab's annotator and return the Workbench screen (taking the first prompt)."""
    with tab.lock:
        if not engine.active.campaign.allows(annotator):
            raise Refused(f"annotator: {annotator!r} is not on this campaign's list of annotators; ask its "
                          "administrator.", "annotator")
        if tab.annotator and tab.annotator != annotator:
            engine.active.assigner.release_tab(tab.tab_id)
            tab.reset()
        tab.annotator, tab.is_admin = annotator, is_admin
        return show(engine, tab, "batch")


def show(engine: Engine, tab: Tab, mode: str = "batch") -> Screen:
    """The view's screen; takes the next open prompt when nothing is on it (also after a failed next batch)."""
    _check_mode(mode)
    with tab.lock:
        _joined(engine, tab)
        view = tab.views[mode]
        if view.screen.state == "batch":
            engine.active.assigner.renew(tab.tab_id)
            return view.screen
        return _advance(engine, tab, mode, view.screen.notice)


def _pair(batch, taken: int):
    """The pair of a prompt's batch to show next: the `taken`-th of its seed pairs, in turn."""
    pairs = list(itertools.combinations(range(len(batch.seeds)), 2))
    if not pairs:
        raise UserError("pairwise: the campaign's batch size is 1, so there is no pair to compare.", "batch_size")
    i, j = pairs[taken % len(pairs)]

    def pick(values):
        return None if values is None else [values[i], values[j]]

    return replace(batch, batch_id=f"{batch.batch_id}-p{i}-{j}", seeds=pick(batch.seeds),
                   image_paths=pick(batch.image_paths), clip_scores=pick(batch.clip_scores), noise=pick(batch.noise),
                   slots=pick(batch.slots) if batch.slots else [], prefilter=None)


def _claim_next(engine: Engine, tab: Tab, mode: str) -> Prompt | None:
    """Claim the first open prompt after this view's place in the list (wrapping round); None if none is open."""
    active, view = engine.active, tab.views[mode]
    n = len(active.prompts)
    for step in range(n):
        prompt = active.prompts[(view.position + 1 + step) % n]
        if active.assigner.claim(mode, prompt.id, tab.annotator, tab.tab_id):
            return prompt
    return None


def _upcoming(engine: Engine, tab: Tab, mode: str, count: int) -> list[Prompt]:
    """The next `count` prompts this tab could be given (claiming none): what to make ahead of time."""
    active, view = engine.active, tab.views[mode]
    n, found = len(active.prompts), []
    for step in range(n):
        prompt = active.prompts[(view.position + 1 + step) % n]
        if len(found) == count:
            break
        if active.assigner.available(mode, prompt.id, tab.annotator, tab.tab_id):
            found.append(prompt)
    return found


def _present(engine: Engine, tab: Tab, mode: str, prompt: Prompt) -> Screen:
    active = engine.active
    try:
        batch = engine.batch(prompt, active)
        if mode == "pairwise":
            batch = _pair(batch, active.assigner.pairs_done(prompt.id))
    except BaseException:
        active.assigner.release(mode, prompt.id, tab.tab_id)
        raise
    return Screen(mode, "batch", prompt, batch, shown_at=time.monotonic(), shown_at_iso=utc_now())


def _advance(engine: Engine, tab: Tab, mode: str, notice: str | None = None) -> Screen:
    view = tab.views[mode]
    if view.resume is not None:  # back to the prompt a relabel interrupted
        screen, view.resume = view.resume, None
        engine.active.assigner.hold(mode, screen.prompt.id, tab.annotator, tab.tab_id)
        view.screen = replace(screen, shown_at=time.monotonic(), shown_at_iso=utc_now(), notice=notice)
        return view.screen
    prompt = _claim_next(engine, tab, mode)
    if prompt is None:
        view.screen = Screen(mode, "done", notice=notice)
        return view.screen
    view.position = engine.active.prompts.index(prompt)
    view.screen = replace(_present(engine, tab, mode, prompt), notice=notice)
    for following in _upcoming(engine, tab, mode, PREFETCH_AHEAD):
        engine.prefetch(following)
    return view.screen


def answer(engine: Engine, tab: Tab, mode: str, batch_id: str, *, golden=None, winner: str | None = None,
           skip: bool = False, visible_ms: int | None = None, interaction=None):
    """Record an answer to the batch `batch_id` on this view and return (record, the next screen).

    A skip on a relabel screen records nothing (record None): the relabel is cancelled.
    """
    _check_mode(mode)
    visible_ms = _visible(visible_ms)
    if not isinstance(batch_id, str):
        raise UserError(f"batch_id: must be the batch id text of the screen, got {short(batch_id)}.", "batch_id")
    if golden is not None and not isinstance(golden, (list, tuple)):
        raise UserError(f"golden_seeds: must be a list of seeds, got {short(golden)}.", "golden_seeds")
    with tab.lock:
        _joined(engine, tab)
        active, view = engine.active, tab.views[mode]
        screen = view.screen
        if screen.state != "batch" or screen.batch is None or screen.batch.batch_id != batch_id:
            if batch_id in view.answered_batches:
                raise Refused("Already recorded: that batch was answered once; nothing more was recorded.", "batch_id")
            raise Refused("That batch is not on your screen any more; nothing was recorded.", "batch_id")
        elapsed = int((time.monotonic() - screen.shown_at) * 1000)
        minimum = active.campaign.min_view_ms
        c = active.campaign
        if skip and screen.origin == "relabel":  # skipping a relabel cancels it: the earlier answer stands
            view.answered_batches.discard(batch_id)
            return None, _advance(engine, tab, mode)
        if skip:
            record = answers.skip(c, tab.annotator, tab.tab_id, screen, elapsed, interaction)
        else:
            seen = elapsed if visible_ms is None else min(elapsed, visible_ms)
            if seen < minimum:
                raise Refused(f"Too quick: look at the images for at least {minimum} ms before answering "
                              "(nothing was recorded).", "visible_ms")
            if mode == "batch":
                chosen = [_seed(s) for s in (golden or [])]
                unknown = sorted(set(chosen) - set(screen.batch.seeds))
                if unknown:
                    raise UserError(f"golden_seeds: {unknown} are not in the batch on screen.", "golden_seeds")
                record = answers.judgement(c, tab.annotator, tab.tab_id, screen, chosen, elapsed, visible_ms,
                                           interaction)
            else:
                if winner not in WINNERS:
                    raise UserError(f"winner: must be one of {', '.join(WINNERS)}, got {short(winner)}.", "winner")
                record = answers.pairwise(c, tab.annotator, tab.tab_id, screen, winner, elapsed, visible_ms,
                                          interaction)
        engine.records.append(record)  # NotSaved: nothing changes, the screen stays for a retry
        active.assigner.answered(mode, screen.prompt.id, tab.annotator, tab.tab_id, record.kind)
        view.undo.append(UndoEntry(record.record_id, record.kind, screen, tuple(getattr(record, "golden_seeds", ()))))
        del view.undo[:-MAX_UNDO]
        view.answered_batches.add(batch_id)
        return record, _advance_after_answer(engine, tab, mode)


def _advance_after_answer(engine: Engine, tab: Tab, mode: str) -> Screen:
    """The next screen once an answer is saved; if it cannot be made, an idle screen that says so (the answered
    batch never stays on screen, so a retry cannot record it twice)."""
    try:
        return _advance(engine, tab, mode)
    except Exception as error:  # noqa: BLE001 - the answer is saved; the next batch is retried on demand
        reason = str(error) if isinstance(error, UserError) else "a server error (logged)"
        if not isinstance(error, UserError):
            log.exception("next batch failed after a saved answer")
        view = tab.views[mode]
        view.screen = Screen(mode, "idle", notice=f"Saved. The next batch could not be made: {reason} "
                                                  "Press Try again (or Enter) when it is fixed.")
        return view.screen


def _seed(value) -> int:
    """A seed from an API or browser value: an int, or a string of ASCII digits (JavaScript cannot hold int64)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 20:
        return int(value.strip())
    raise UserError(f"golden_seeds: {short(value)} is not a seed (send seeds as integers or digit strings).",
                    "golden_seeds")


def undo(engine: Engine, tab: Tab, mode: str = "batch"):
    """Retract this view's last answer and put its batch back on screen: (retraction, screen)."""
    _check_mode(mode)
    with tab.lock:
        _joined(engine, tab)
        active, view = engine.active, tab.views[mode]
        if not view.undo:
            raise Refused("Nothing to undo in this tab.", "undo")
        entry = view.undo[-1]
        record = answers.retraction(active.campaign, tab.annotator, tab.tab_id, entry.screen.prompt, entry.record_id)
        engine.records.append(record)
        view.undo.pop()
        view.answered_batches.discard(entry.screen.batch.batch_id)
        if view.screen.state == "batch" and view.screen.origin == "queue":
            active.assigner.release(mode, view.screen.prompt.id, tab.tab_id)  # taken again when we come back to it
            view.position = active.prompts.index(view.screen.prompt) - 1 if view.screen.prompt in active.prompts \
                else view.position
        active.assigner.retracted(mode, entry.screen.prompt.id, tab.annotator, tab.tab_id, entry.kind)
        if entry.screen.origin == "queue" and entry.screen.prompt in active.prompts:
            view.position = active.prompts.index(entry.screen.prompt)
        view.screen = replace(entry.screen, ticks=entry.golden, shown_at=time.monotonic(), shown_at_iso=utc_now(),
                              notice=None)
        return record, view.screen


def find_record(engine: Engine, record_id: str, any_campaign: bool = False):
    records = engine.records.read().records
    for record in live(records if any_campaign else in_campaign(records, engine.active.id)):
        if record.record_id == record_id:
            return record
    raise Refused(f"record_id: no live answer {str(record_id)[:40]!r} in this campaign (undone, relabelled, or "
                  "from another campaign).", "record_id")


def relabel(engine: Engine, tab: Tab, record_id: str) -> Screen:
    """Show a judgement again: your own is relabelled (superseded); someone else's gets your second opinion."""
    with tab.lock:
        _joined(engine, tab)
        record = find_record(engine, record_id)
        if record.kind != "judgement":
            raise Refused("Only judgements can be relabelled.", "record_id")
        if record.annotator != tab.annotator:  # your own answer to this batch already counts? relabel that one
            earlier = [r for r in live(in_campaign(engine.records.read().records, engine.active.id))
                       if r.kind == "judgement" and r.annotator == tab.annotator
                       and (r.second_opinion_of == record_id or (record.batch_id and r.batch_id == record.batch_id))]
            record = earlier[-1] if earlier else record
        own = record.annotator == tab.annotator
        active, view = engine.active, tab.views["batch"]
        if view.screen.state == "batch" and view.screen.origin == "queue":
            view.resume = view.screen
        prompt = next((p for p in active.prompts if p.id == record.prompt.id), None) or Prompt(
            record.prompt.text, record.prompt.id, record.prompt.index, record.prompt.source)
        active.assigner.hold("batch", prompt.id, tab.annotator, tab.tab_id)
        view.screen = Screen("batch", "batch", prompt, answers.batch_from_record(record),
                             ticks=tuple(record.golden_seeds) if own else (), shown_at=time.monotonic(),
                             shown_at_iso=utc_now(), origin="relabel",
                             supersedes=record.record_id if own else None,
                             # a relabelled second opinion stays a second opinion of the same answer
                             second_opinion_of=record.second_opinion_of if own else record.record_id)
        return view.screen


def close(engine: Engine, tab: Tab) -> int:
    """The tab closed or reloaded: free the prompts it held at once."""
    with tab.lock:
        return engine.active.assigner.release_tab(tab.tab_id) if engine._active else 0


def progress(engine: Engine, tab: Tab, mode: str = "batch") -> dict:
    """This annotator's counts in the active campaign (total, judged, skipped, remaining_for_you)."""
    active = engine.active
    return active.assigner.counts(mode, [p.id for p in active.prompts], tab.annotator or "")
