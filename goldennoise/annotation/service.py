"""The annotation service: the only writer of tab, lease, tick, undo and campaign state.

Typed commands in, plain data out. The browser's listeners, the API's endpoints
(the design's `/init_model`, `/get_next_prompt`, `/generate_batch`,
`/submit_selection` and the rest), the script API (`Collector`) and `goldennoise
generate` are adapters: they translate, call one command, render. Each command
names its caller (`Caller`: the connection, and the login when there are logins);
a tab answers only to the login that joined it.

    service = Service("outputs")                   # SQLite in outputs/ (or store="postgresql://…")
    service.start(campaign)                        # the campaign becomes a running model (runtime_for)
    screen = service.join(caller, "ada")           # the Workbench, holding the first open prompt
    done = service.answer(caller, "batch", screen.batch.batch_id, golden=[screen.batch.seeds[0]])
    done.record, done.screen                       # what was written, and the next batch, in one call

An answer counts only for the batch it names, only after the batch was on screen for
the campaign's minimum viewing time, only while the tab still holds its prompt, and
only once; it is refused politely otherwise and nothing is written. Undo takes back
the tab's own last live answer (found in the store, so it works after a reload);
relabelling someone else's judgement records a second opinion (both count).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from goldennoise.annotation import answers
from goldennoise.annotation.access import Access
from goldennoise.annotation.batches import Batches
from goldennoise.annotation.runtime import Runtime, runtime_for
from goldennoise.annotation.tabs import MAX_EXPLICIT, MODES, Screen, Tab, Tabs, session_id
from goldennoise.errors import CampaignError, LeaseLost, Refused, UserError
from goldennoise.generation import gpu
from goldennoise.generation.pipeline import GenerationParams, check_params, check_seeds, size_multiple
from goldennoise.ids import utc_now
from goldennoise.store import queue
from goldennoise.store.campaign import SETTINGS, Campaign, from_definition
from goldennoise.store.live import history_row
from goldennoise.store.names import identity
from goldennoise.store.prompts import Prompt, load_prompts, prompt_id
from goldennoise.store.records import Guard, RecordStore

log = logging.getLogger(__name__)
WINNERS = ("left", "right", "tie", "both_bad")
PREFETCH_AHEAD = 2  # batches made ahead per tab: one slow batch does not make the next answer wait
MAX_VISIBLE_MS = 86_400_000  # a day: a longer "viewing time" is not one
MAX_CONNECTION = 64
PROMPT_FILES = "prompt-files"


def short(value) -> str:
    """A value for an error message, never more than a line (inputs may be megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the connection (Gradio's session hash, an API client, a script) and its login, if any."""

    connection: str
    login: str | None = None


@dataclass
class Answered:
    record: object | None  # None: a relabel cancelled by a skip (nothing written)
    screen: Screen  # what the view shows next
    message: str  # what to tell the annotator
    progress: dict | None = None  # the annotator's progress as the answer's own transaction left it (None: not read)


@dataclass
class Claimed:
    """A view's next prompt, held in the transaction that recorded its last answer, and the ones to make ahead."""

    prompt: Prompt | None
    ahead: list[Prompt]
    progress: dict  # the annotator's progress in the view, this answer counted


@dataclass
class Display:
    """A view as the screen shows it: the screen, the annotator's progress and the campaign's rules for it."""

    screen: Screen
    progress: dict | None
    min_view_ms: int
    blind: bool
    waiting: bool  # a done screen with prompts still held by others
    warning: str | None = None  # said on every screen (a placeholder model with random weights)


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


def _seed(value) -> int:
    """A seed from an API or browser value: an int, or a string of ASCII digits (JavaScript cannot hold int64)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 20:
        return int(value.strip())
    raise UserError(f"golden_seeds: {short(value)} is not a seed (send seeds as integers or digit strings).",
                    "golden_seeds")


TWINS_NOTICE = ("This campaign compares each seed's two noises side by side: answer it in the Pairwise view "
                "(nothing to judge here).")


def _pair(batch, taken: int, twinned: bool = False):
    """The pair of a prompt's batch to show next: the `taken`-th of its seed pairs, in turn (when `twinned`, of its
    same-seed pairs: places 0-1, 2-3, ..., the source's side drawn at random when the batch was made)."""
    if twinned:
        pairs = [(i, i + 1) for i in range(0, len(batch.seeds) - 1, 2)]
    else:
        pairs = list(itertools.combinations(range(len(batch.seeds)), 2))
    if not pairs:
        raise UserError("pairwise: the campaign's batch size is 1, so there is no pair to compare.", "batch_size")
    i, j = pairs[taken % len(pairs)]
    return batch.select([i, j], batch_id=f"{batch.batch_id}-p{i}-{j}", prefilter=None)


def cut(text: str, limit: int = 60) -> str:
    """A prompt for a one-line message: cut at a word with an ellipsis when longer than `limit`."""
    if len(text) <= limit:
        return text
    head = text[:limit - 1].rsplit(" ", 1)[0] if " " in text[:limit - 1] else text[:limit - 1]
    return head.rstrip(" ,;:") + "…"


def saved_text(record, campaign: Campaign) -> str:
    """What was just recorded, in words (and, only where the campaign says so, which image CLIP would have picked)."""
    if record.kind == "skip":
        return f"Skipped “{cut(record.prompt.text)}”."
    if record.kind == "pairwise":
        return f"Saved: {record.preference.winner.replace('_', ' ')} for “{cut(record.prompt.text)}”."
    counted = {"none_golden": f"none golden ({len(record.bad_seeds)} bad)",
               "all_golden": f"all golden ({len(record.golden_seeds)})"}.get(
        record.verdict, f"{len(record.golden_seeds)} golden, {len(record.bad_seeds)} bad")
    text = f"Saved: {counted} for “{cut(record.prompt.text)}”."
    scores = [s.clip_score for s in record.samples]
    if campaign.show_clip_pick_after and scores and all(s is not None for s in scores):
        best = max(range(len(scores)), key=lambda i: scores[i])
        text += f" CLIP would have picked #{best + 1} (score {scores[best]:.1f})."
    return text


class Service:
    """The campaign, the tabs and their answers, for one app process (a replica: several may share one store)."""

    def __init__(self, outputs: str | Path, store: str | RecordStore | None = None, access: Access | None = None,
                 device_list: list[str] | None = None, load_options: dict | None = None,
                 prefetch: bool | None = None, clock=time.time, lease_seconds: float = queue.LEASE_SECONDS,
                 follow_seconds: float = 2.0, max_batch_seconds: float | None = 600.0):
        self.outputs = Path(outputs)
        self.store = store if isinstance(store, RecordStore) else RecordStore(self.outputs, store)
        self.access = access or Access()
        self.tabs = Tabs()
        self.device_list, self.load_options = device_list, load_options or {}
        # ZeroGPU grants a GPU only inside a user's request: no speculative work there.
        self.prefetching = (not gpu.zero_gpu()) if prefetch is None else prefetch
        self.clock, self.lease_seconds, self.follow_seconds = clock, lease_seconds, follow_seconds
        self.max_batch_seconds = max_batch_seconds  # a batch estimated to take longer is refused up front
        self.runtime: Runtime | None = None
        self.batches: Batches | None = None
        self.epoch = 0  # bumped at every campaign swap in this process; tabs of an older epoch start afresh
        self._store_epoch = 0  # the store's epoch of the campaign this process runs (several replicas)
        self._followed = 0.0
        self._switch_lock = threading.Lock()

    # The campaign -------------------------------------------------------------------------------

    @property
    def campaign(self) -> Campaign:
        return self._runtime().campaign

    def _runtime(self) -> Runtime:
        if self.runtime is None:
            raise CampaignError("No campaign is running: start the app with a campaign.", "campaign")
        return self.runtime

    def start(self, campaign: Campaign, load: str = "auto", progress=None, prompt_set=None) -> Runtime:
        """Make `campaign` the running one (at start-up, in the main thread); every replica of the store follows."""
        with self._switch_lock:
            runtime = runtime_for(campaign, self.store, self.outputs, load, self.device_list, self.load_options,
                                  progress, prompt_set, self.max_batch_seconds)
            self._swap(runtime)
            self._publish(runtime)
            return runtime

    def _swap(self, runtime: Runtime) -> None:
        old, old_batches = self.runtime, self.batches
        if old is not None:
            with old.pool.all():  # in-flight device work finishes; nothing new starts on the old workers
                self.runtime, self.batches = runtime, Batches(runtime, self.store, self.outputs, self.prefetching)
                self.epoch += 1
            old_batches.close()
            old.close()
        else:
            self.runtime, self.batches = runtime, Batches(runtime, self.store, self.outputs, self.prefetching)
            self.epoch += 1

    def _publish(self, runtime: Runtime) -> None:
        definition, epoch = self.store.active()
        mine = {"id": runtime.id, **runtime.campaign.definition()}
        self._store_epoch = epoch if definition == mine else self.store.set_active(mine)

    def _follow(self) -> None:
        """Another replica switched the campaign: load it here too (at most every `follow_seconds`)."""
        now = time.monotonic()
        if self.runtime is None or now - self._followed < self.follow_seconds:
            return
        self._followed = now
        if self.store.epoch() == self._store_epoch:  # the usual case: one small read, no definition to parse
            return
        definition, epoch = self.store.active()
        if epoch == self._store_epoch or definition is None:
            return
        if not self._switch_lock.acquire(blocking=False):
            return  # a switch is on its way in this process
        try:
            if definition.get("id") != self.runtime.id:
                self._swap(runtime_for(from_definition(definition), self.store, self.outputs, "auto",
                                       self.device_list, self.load_options, max_batch_seconds=self.max_batch_seconds))
                log.info("following the campaign switch to %s", self.runtime.id)
            self._store_epoch = epoch
        except UserError as error:
            log.error("could not follow the switch to %s: %s", definition.get("id"), error)
            self._store_epoch = epoch
        finally:
            self._switch_lock.release()

    def switch(self, caller: Caller, changes: dict, progress=None) -> Runtime:
        """Administrators: run the current campaign with `changes` (setting -> value; see Campaign.switched).

        The new model loads beside the old one; a failure changes nothing."""
        self._admin(caller)
        with self._switch_lock:
            new = self._runtime().campaign.switched(changes)
            runtime = runtime_for(new, self.store, self.outputs, "auto", self.device_list, self.load_options,
                                  progress, max_batch_seconds=self.max_batch_seconds)
            self._swap(runtime)
            self._publish(runtime)
            return runtime

    def upload_prompts(self, caller: Caller, upload: Path, progress=None) -> Runtime:
        """Administrators: the current campaign on an uploaded prompt file, kept as JSONL in the outputs folder."""
        import hashlib
        import json

        self._admin(caller)
        prompt_set = load_prompts(upload)  # refuses a bad file with the line and the reason
        rows = [{"prompt": p.text, **p.metadata, "id": p.id} for p in prompt_set.prompts]
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        folder = self.outputs / PROMPT_FILES
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"
        target.write_text(text, encoding="utf-8")
        return self.switch(caller, {"prompts": str(target)}, progress)

    def settings(self, admin: bool = False) -> dict:
        """The running campaign's settings as annotators may see them (no server paths, and not the noise source:
        which candidates start from another noise is kept from them); with `admin`, the noise settings too (the
        checkpoint by file name). A switch made on another replica is followed first."""
        self._follow()
        runtime = self._runtime()
        c = runtime.campaign
        values = {name: getattr(c, name) for name in SETTINGS
                  if admin or not SETTINGS[name]["key"].startswith("noise.")}
        values.update(model=c.public_model, prompts=Path(c.prompts).name, annotators=list(c.annotators))
        if admin and c.noise_checkpoint:
            values["noise_checkpoint"] = Path(c.noise_checkpoint).name
        return {"id": c.id, **values, "prompt_count": len(runtime.prompts),
                "batches_ready": self.store.batch_count(c.id), "warnings": list(runtime.warnings)}

    # Tabs -----------------------------------------------------------------------------------------

    def _tab(self, caller: Caller) -> Tab:
        """The caller's joined tab (refused when it belongs to another login). A client that did not say who it is
        but whose login says it is joined on its first command (without logins, /start says who it is)."""
        self._follow()
        tab = self.tabs.find(caller.connection) if caller.connection else None
        if (tab is None or not tab.annotator) and caller.connection and self.access.logins and caller.login:
            self.join(caller, None, present=False)
            tab = self.tabs.find(caller.connection)
        if tab is None or not tab.annotator:
            raise UserError("annotator: say who you are first (Start, or the API's /start).", "annotator")
        if self.access.logins and tab.login != caller.login:
            raise Refused("This session belongs to another login; reload the page.", "annotator")
        return tab

    def _admin(self, caller: Caller) -> Tab:
        tab = self._tab(caller)
        if not tab.is_admin:
            raise Refused("Only an administrator may do this (switch the campaign, analyse, export, see everyone's "
                          "answers). Ask the person running GoldenNoise.", "admin")
        return tab

    def is_admin(self, caller: Caller) -> bool:
        tab = self.tabs.find(caller.connection) if caller.connection else None
        return bool(tab and tab.is_admin and (not self.access.logins or tab.login == caller.login))

    def annotator_of(self, caller: Caller) -> str | None:
        tab = self.tabs.find(caller.connection) if caller.connection else None
        return tab.annotator if tab is not None and (not self.access.logins or tab.login == caller.login) else None

    def join(self, caller: Caller, name: str | None = None, tab_key: str | None = None, present: bool = True
             ) -> Screen:
        """Say who is labelling in this tab; returns the Workbench screen (holding the first open prompt, unless
        `present` is false: then the screen as it is)."""
        if not isinstance(caller.connection, str) or not 1 <= len(caller.connection) <= MAX_CONNECTION:
            raise UserError("session: this connection has no usable id; reload the page.", "session")
        if tab_key is not None and (not isinstance(tab_key, str) or not 8 <= len(tab_key) <= 64
                                    or not tab_key.isascii() or not tab_key.replace("-", "").isalnum()):
            tab_key = None
        self._follow()
        annotator, is_admin = self.access.identify(caller.login, name)
        runtime = self._runtime()
        if not runtime.campaign.allows(annotator):
            raise Refused(f"annotator: {annotator!r} is not on this campaign's list of annotators; ask its "
                          "administrator.", "annotator")
        tab = self.tabs.find(caller.connection)
        if tab is not None and tab.annotator and self.access.logins and tab.login != caller.login:
            raise Refused("This session belongs to another login; reload the page.", "annotator")
        if tab is None:
            tab = Tab(caller.connection, session_id(tab_key or f"connection:{caller.connection}"))
            for dropped in self.tabs.add(tab):
                self._release_all(dropped)
        with tab.lock:
            if tab.who is not None and tab.who != identity(annotator):
                self._release_all(tab)
                tab.reset()
            tab.annotator, tab.who, tab.login, tab.is_admin = annotator, identity(annotator), caller.login, is_admin
            if not present:
                self._sync(tab)
                return tab.views["batch"].screen
            return self._show(tab, "batch")

    def close(self, caller: Caller) -> int:
        """The tab closed or reloaded: free the prompts it held at once (only its own login may close it)."""
        tab = self.tabs.find(caller.connection) if caller.connection else None
        if tab is None or (self.access.logins and tab.login != caller.login):
            return 0
        self.tabs.pop(caller.connection)
        return self._release_all(tab)

    def _release_all(self, tab: Tab) -> int:
        with self.store.queue(write=True) as conn:
            return queue.release_session(conn, tab.connection)

    def _sync(self, tab: Tab) -> None:
        """A tab made on an older campaign starts afresh on the new one, told why."""
        if tab.epoch != self.epoch:
            if tab.epoch:
                self._release_all(tab)
                tab.reset(f"An administrator switched to campaign {self._runtime().id}; you go on there.")
            tab.epoch = self.epoch

    # Screens ----------------------------------------------------------------------------------------

    def show(self, caller: Caller, mode: str = "batch") -> Screen:
        """The view's screen; takes the next open prompt when nothing is on it (also after a failed next batch)."""
        _check_mode(mode)
        tab = self._tab(caller)
        with tab.lock:
            return self._show(tab, mode)

    def _show(self, tab: Tab, mode: str) -> Screen:
        self._sync(tab)
        view = tab.views[mode]
        if view.screen.state == "batch":
            return view.screen
        if view.screen.state == "held":
            view.screen = self._present(tab, mode, view.screen.prompt)
            return view.screen
        return self._advance(tab, mode, view.screen.notice)

    def display(self, caller: Caller, mode: str, answered: Answered | None = None) -> Display:
        """The view's screen with what drawing it needs (progress, the campaign's viewing rules). `answered`: the
        answer just given, whose transaction read the progress (saving a read; see `progress`)."""
        tab = self._tab(caller)
        c = self._runtime().campaign
        with tab.lock:
            self._sync(tab)
            screen = tab.views[_check_mode(mode)].screen
            progress = self.progress(caller, mode, answered)
        placeholder = next((w for w in self._runtime().warnings if "random weights" in w), None)
        return Display(screen, progress, c.min_view_ms, c.blind,
                       screen.state == "done" and progress["remaining_for_you"] > 0, placeholder)

    def progress(self, caller: Caller, mode: str = "batch", answered: Answered | None = None) -> dict:
        """This annotator's counts in the running campaign (total, judged, skipped, remaining_for_you). `answered`:
        the answer just given in this view; its transaction's counts are used when they are of the running campaign
        (after a switch in between, they are read afresh)."""
        if answered is not None and answered.progress is not None and answered.record is not None \
                and answered.record.campaign == self._runtime().id and answered.screen.mode == mode:
            return answered.progress
        tab = self._tab(caller)
        with self.store.queue() as conn:
            return queue.progress_of(conn, self._runtime().id, _check_mode(mode), tab.who)

    def next_prompt(self, caller: Caller, mode: str = "batch", annotator: str | None = None) -> Screen:
        """The design's `/get_next_prompt`: hold this client's next prompt (the one on screen, if any). A client that
        has not said who it is yet joins here (its login, else `annotator`)."""
        _check_mode(mode)
        found = self.tabs.find(caller.connection) if caller.connection else None
        if found is None or not found.annotator:
            self.join(caller, annotator, present=False)
        tab = self._tab(caller)
        with tab.lock:
            self._sync(tab)
            self._answerable(mode)
            view = tab.views[mode]
            if view.screen.state in ("held", "batch"):
                return view.screen
            prompt = self._claim(tab, mode)
            if prompt is None:
                view.screen = Screen(mode, "done")
                return view.screen
            view.position = prompt.index
            view.screen = Screen(mode, "held", prompt)
            if self.prefetching:
                self.batches.prefetch(prompt)
            return view.screen

    def make_batch(self, caller: Caller, prompt: str | None = None, seeds: list | None = None,
                   parameters: dict | None = None, mode: str = "batch", prompt_id: str | None = None) -> Screen:
        """The design's `/generate_batch`: the batch of the prompt this client holds; or (administrators, scripts)
        a batch of an explicit prompt, seeds and generation parameters, made within the same resource limits."""
        _check_mode(mode)
        tab = self._tab(caller)
        runtime = self._runtime()
        explicit = prompt is not None or seeds is not None or bool(parameters)
        with tab.lock:
            self._sync(tab)
            view = tab.views[mode]
            if not explicit:
                if view.screen.state == "held":
                    view.screen = self._present(tab, mode, view.screen.prompt)
                if view.screen.state != "batch":
                    raise UserError("prompt: this client holds no prompt; call /get_next_prompt first (or, as an "
                                    "administrator, name a prompt and seeds).", "prompt")
                return view.screen
            if not tab.is_admin:
                raise Refused("Only an administrator may generate a batch of their own prompt, seeds or parameters; "
                              "annotators label the campaign's batches (/get_next_prompt).", "admin")
            held = view.screen.prompt if view.screen.state in ("held", "batch") else None
            chosen = self._prompt(prompt, held, prompt_id)
            params = self._params(parameters)
            drawn = seeds is None  # then the campaign's seed strategy chose them, as for the queue
            twins = drawn and mode == "pairwise" and self.batches.twinned  # one seed's two noises, as the queue's
            if drawn:
                seeds = self.batches.draw_seeds(chosen, whole=not twins)[:runtime.campaign.batch_size]
            if not isinstance(seeds, (list, tuple)):
                raise UserError(f"seeds: a list of seeds, got {short(seeds)}.", "seeds")
            if mode == "pairwise" and len(seeds) != (1 if twins else 2):
                raise UserError(f"seeds: a pair is two seeds, got {len(seeds)}.", "seeds")
            origin = "request" if drawn else "explicit"
            runtime.budget.check(2 if twins else len(seeds), params.height, params.width,
                                 params.num_inference_steps, self.max_batch_seconds, "seeds")
            batch = self.batches.explicit(chosen, check_seeds([_seed(s) for s in seeds]), params, origin, twins)
            screen = Screen(mode, "batch", chosen, batch, shown_at=time.monotonic(), shown_at_iso=utc_now(),
                            origin=origin)
            self._keep(view, screen)
            return screen

    @staticmethod
    def _keep(view, screen: Screen) -> None:
        view.explicit[screen.batch.batch_id] = screen
        while len(view.explicit) > MAX_EXPLICIT:
            view.explicit.popitem(last=False)

    def offer(self, caller: Caller, batch_id: str, mode: str = "batch") -> Screen:
        """Put a batch made on request in this service (by any tab) before this tab too, to answer (scripts that
        judge one batch as several annotators)."""
        tab = self._tab(caller)
        made = self.batches.made.get(batch_id) if self.batches is not None else None
        if made is None:
            raise UserError(f"batch_id: {short(batch_id)} was not made on request in this campaign (or long ago).",
                            "batch_id")
        prompt, batch, origin = made
        with tab.lock:
            screen = Screen(mode, "batch", prompt, batch, shown_at=time.monotonic(), shown_at_iso=utc_now(),
                            origin=origin)
            self._keep(tab.views[mode], screen)
            return screen

    def withdraw(self, caller: Caller, record_id: str):
        """Retract one of your own live answers of this campaign (no screen changes); returns the retraction."""
        tab = self._tab(caller)
        with tab.lock:
            found = self.store.get(record_id) if isinstance(record_id, str) and len(record_id) == 32 else None
            if found is None or not found[1] or found[0].campaign != self._runtime().id:
                raise Refused(f"record {str(record_id)[:40]}: not a live answer of this campaign (already withdrawn "
                              "or replaced).", "record")
            record = found[0]
            if identity(record.annotator) != tab.who:
                raise Refused(f"record {record.record_id}: it is {record.annotator}'s answer; only its author can "
                              "withdraw it.", "record")
            retraction = answers.retraction(self._runtime().campaign, tab, record)
            self.store.append(retraction)
            return retraction

    def _prompt(self, text: str | None, held: Prompt | None, given_id: str | None = None) -> Prompt:
        """The prompt of an explicit batch: given text (its place kept in the campaign's list of prompts made on
        request), else the one this client holds."""
        if text is None:
            if held is None:
                raise UserError("prompt: give the prompt text (or hold one with /get_next_prompt).", "prompt")
            return held
        if not isinstance(text, str) or not " ".join(text.split()):
            raise UserError("prompt: empty; give the text to generate.", "prompt")
        text = " ".join(text.split())
        if len(text) > 4000:
            raise UserError(f"prompt: {len(text)} characters; the limit is 4000.", "prompt")
        if given_id is not None and (not isinstance(given_id, str) or not 1 <= len(given_id) <= 1024):
            raise UserError("prompt_id: text of 1..1024 characters.", "prompt_id")
        runtime = self._runtime()
        pid = given_id or prompt_id(text)
        found = runtime.prompts.by_id(pid)
        if found is not None:
            return found
        return self.store.adhoc_prompt(runtime.id, text, pid)

    def _params(self, overrides: dict | None) -> GenerationParams:
        runtime = self._runtime()
        if not overrides:
            return runtime.params
        if not isinstance(overrides, dict):
            raise UserError("parameters: a mapping of generation parameters (num_inference_steps, guidance_scale, "
                            "height, width, …).", "parameters")
        known = set(GenerationParams.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise UserError(f"{unknown[0]}: not a generation parameter; use {', '.join(sorted(known))}.", unknown[0])
        params = replace(runtime.params, **{k: v for k, v in overrides.items() if v is not None})
        if runtime.workers:
            check_params(params, size_multiple(runtime.workers[0].model.pipe))
        return params

    def _claim(self, tab: Tab, mode: str, conn=None) -> Prompt | None:
        """Hold the first open prompt after this view's place in the list (wrapping round); None if none is open.
        `conn`: within that write transaction (an answer's), else in one of its own."""
        if conn is None:
            with self.store.queue(write=True) as conn:
                return self._claim(tab, mode, conn)
        runtime, view, now = self._runtime(), tab.views[mode], self.clock()
        while True:
            found = queue.candidates(conn, runtime.id, mode, tab.who, tab.connection, view.position, now, 8)
            if not found:
                return None
            for index, pid in found:
                if queue.take(conn, runtime.id, mode, pid, tab.who, tab.connection, now, self.lease_seconds):
                    return runtime.prompts.at(index)

    def _upcoming(self, tab: Tab, mode: str, count: int, after: int | None = None, conn=None) -> list[Prompt]:
        """The next `count` prompts this tab could be given after `after` (default: its place), claiming none: what
        to make ahead of time."""
        if conn is None:
            with self.store.queue() as conn:
                return self._upcoming(tab, mode, count, after, conn)
        runtime, view = self._runtime(), tab.views[mode]
        found = queue.candidates(conn, runtime.id, mode, tab.who, tab.connection,
                                 view.position if after is None else after, self.clock(), count)
        return [runtime.prompts.at(index) for index, _ in found]

    def _claim_next(self, tab: Tab, mode: str):
        """What an answer's own transaction does after its record (RecordStore.append's `then`): hold the tab's next
        prompt and find the ones to make ahead. None when the next screen is not a plain claim (a relabel's
        interrupted prompt comes back first; a same-seed campaign's Workbench holds nothing)."""
        if tab.views[mode].resume is not None or (mode == "batch" and self.pairwise_only):
            return None

        def then(conn) -> Claimed:
            prompt = self._claim(tab, mode, conn)
            ahead = ([] if prompt is None or not self.prefetching else
                     self._upcoming(tab, mode, PREFETCH_AHEAD, prompt.index, conn))
            return Claimed(prompt, ahead, queue.progress_of(conn, self._runtime().id, mode, tab.who))
        return then

    @property
    def pairwise_only(self) -> bool:
        """The running campaign is answered in Pairwise only (same-seed pairs: `[noise] pairing = "same_seed"`)."""
        return self.batches is not None and self.batches.twinned

    def _answerable(self, mode: str) -> None:
        """UserError when the campaign's batches cannot be answered in this view (a same-seed campaign's pairs in the
        Workbench: a judgement names golden seeds, and both of a pair's images have one seed)."""
        if mode == "batch" and self.pairwise_only:
            raise UserError("mode: this campaign compares each seed's two noises side by side; its prompts are "
                            "answered in the Pairwise view (mode \"pairwise\").", "mode")

    def _present(self, tab: Tab, mode: str, prompt: Prompt) -> Screen:
        self._answerable(mode)
        runtime = self._runtime()
        try:
            batch = self.batches.shown(prompt)
            if mode == "pairwise":
                with self.store.queue() as conn:
                    row = queue.state_of(conn, runtime.id, "pairwise", prompt.id)
                batch = _pair(batch, row.judged if row else 0, self.batches.twinned)
        except BaseException:
            with self.store.queue(write=True) as conn:
                queue.release(conn, runtime.id, mode, prompt.id, tab.connection)
            raise
        return Screen(mode, "batch", prompt, batch, shown_at=time.monotonic(), shown_at_iso=utc_now())

    def _advance(self, tab: Tab, mode: str, notice: str | None = None, claimed: Claimed | None = None) -> Screen:
        """The view's next screen. `claimed`: its next prompt, already held in the answer's transaction."""
        view = tab.views[mode]
        if claimed is not None:
            return self._advance_to(tab, mode, claimed.prompt, notice, claimed.ahead)
        if view.resume is not None:  # back to the prompt a relabel interrupted, if this tab still holds it
            screen, view.resume = view.resume, None
            with self.store.queue(write=True) as conn:
                kept = queue.take(conn, self._runtime().id, mode, screen.prompt.id, tab.who, tab.connection,
                                  self.clock(), self.lease_seconds)
            if kept:
                view.screen = replace(screen, shown_at=time.monotonic(), shown_at_iso=utc_now(), notice=notice)
                return view.screen
        if mode == "batch" and self.pairwise_only:
            view.screen = Screen(mode, "idle", notice=TWINS_NOTICE)
            return view.screen
        return self._advance_to(tab, mode, self._claim(tab, mode), notice)

    def _advance_to(self, tab: Tab, mode: str, prompt: Prompt | None, notice: str | None,
                    ahead: list[Prompt] | None = None) -> Screen:
        """Show the prompt this view holds now (None: nothing is open), and make the following ones ahead."""
        view = tab.views[mode]
        if prompt is None:
            view.screen = Screen(mode, "done", notice=notice)
            return view.screen
        view.position = prompt.index
        view.screen = replace(self._present(tab, mode, prompt), notice=notice)
        if self.prefetching:
            for following in self._upcoming(tab, mode, PREFETCH_AHEAD) if ahead is None else ahead:
                self.batches.prefetch(following)
        return view.screen

    def _advance_after_answer(self, tab: Tab, mode: str, claimed: Claimed | None = None) -> Screen:
        """The next screen once an answer is saved; if it cannot be made, an idle screen that says so (the answered
        batch never stays on screen, so a retry cannot record it twice)."""
        try:
            return self._advance(tab, mode, claimed=claimed)
        except Exception as error:  # noqa: BLE001 - the answer is saved; the next batch is retried on demand
            reason = str(error) if isinstance(error, UserError) else "a server error (logged)"
            if not isinstance(error, UserError):
                log.exception("next batch failed after a saved answer")
            tab.views[mode].screen = Screen(mode, "idle", notice=f"Saved. The next batch could not be made: {reason} "
                                                                 "Press Try again (or Enter) when it is fixed.")
            return tab.views[mode].screen

    # Answers -------------------------------------------------------------------------------------------

    def answer(self, caller: Caller, mode: str, batch_id: str, *, golden=None, winner: str | None = None,
               skip: bool = False, visible_ms: int | None = None, interaction=None) -> Answered:
        """Record an answer to the batch `batch_id` on this view; returns it with the next screen."""
        _check_mode(mode)
        visible_ms = _visible(visible_ms)
        if not isinstance(batch_id, str) or len(batch_id) > 300:
            raise UserError(f"batch_id: must be the batch id text of the screen, got {short(batch_id)}.", "batch_id")
        if golden is not None and not isinstance(golden, (list, tuple)):
            raise UserError(f"golden_seeds: must be a list of seeds, got {short(golden)}.", "golden_seeds")
        tab = self._tab(caller)
        with tab.lock:
            self._sync(tab)
            runtime, view = self._runtime(), tab.views[mode]
            c = runtime.campaign
            current = view.screen.state == "batch" and view.screen.batch.batch_id == batch_id
            screen = view.screen if current else view.explicit.get(batch_id)
            if screen is None:
                if self.store.answered(c.id, tab.annotator, batch_id):
                    raise Refused("Already recorded: that batch was answered once; nothing more was recorded.",
                                  "batch_id")
                raise Refused("That batch is not on your screen any more; nothing was recorded.", "batch_id")
            elapsed = int((time.monotonic() - screen.shown_at) * 1000)
            if skip and screen.origin == "relabel":  # skipping a relabel cancels it: the earlier answer stands
                nxt = self._advance(tab, mode) if current else view.screen
                return Answered(None, nxt, "Relabel cancelled: your earlier answer stands.")
            record = self._record(c, tab, mode, screen, golden, winner, skip, elapsed, visible_ms, interaction)
            queued = screen.origin in ("queue", "undo")
            guard = Guard(session=tab.connection if queued else None,
                          new_judgement=screen.origin != "relabel", now=self.clock())
            try:  # NotSaved / Refused: nothing changes, the screen stays for a retry
                claimed = self.store.append(record, guard, then=self._claim_next(tab, mode) if current else None)
            except LeaseLost:
                view.screen = self._advance(tab, mode, "The prompt you were answering was released (you opened more "
                                                       "tabs, or it was idle too long); here is the next one.")
                raise
            if current:
                nxt = self._advance_after_answer(tab, mode, claimed)
            else:
                view.explicit.pop(batch_id, None)
                nxt = view.screen
            return Answered(record, nxt, saved_text(record, c), claimed.progress if claimed is not None else None)

    def _record(self, c: Campaign, tab: Tab, mode: str, screen: Screen, golden, winner, skip, elapsed, visible_ms,
                interaction):
        if skip:
            return answers.skip(c, tab, screen, elapsed, interaction)
        seen = elapsed if visible_ms is None else min(elapsed, visible_ms)
        if seen < c.min_view_ms:
            raise Refused(f"Too quick: look at the images for at least {c.min_view_ms} ms before answering "
                          "(nothing was recorded).", "visible_ms")
        if mode == "batch":
            chosen = [_seed(s) for s in (golden or [])]
            unknown = sorted(set(chosen) - set(screen.batch.seeds))
            if unknown:
                raise UserError(f"golden_seeds: {unknown} are not in the batch on screen.", "golden_seeds")
            return answers.judgement(c, tab, screen, chosen, elapsed, visible_ms, interaction)
        if winner not in WINNERS:
            raise UserError(f"winner: must be one of {', '.join(WINNERS)}, got {short(winner)}.", "winner")
        record = answers.pairwise(c, tab, screen, winner, elapsed, visible_ms, interaction)
        return record.model_copy(update={"supersedes": screen.supersedes}) if screen.supersedes else record

    def undo(self, caller: Caller, mode: str = "batch"):
        """Retract this tab's last live answer in a view and put its batch back on screen: (retraction, screen)."""
        _check_mode(mode)
        tab = self._tab(caller)
        with tab.lock:
            self._sync(tab)
            runtime, view = self._runtime(), tab.views[mode]
            record = self.store.last_in_tab(runtime.id, tab.annotator, tab.session_id, mode)
            if record is None:
                raise Refused("Nothing to undo in this tab. To change an earlier answer, open History and relabel "
                              "it.", "undo")
            retraction = answers.retraction(runtime.campaign, tab, record)
            back = self._screen_of(record, mode, own=True)
            self.store.append(retraction)
            if back.origin == "relabel":
                if view.screen.state == "batch" and view.screen.origin == "queue":
                    view.resume = view.screen  # the queue prompt on screen waits, still held, for the relabel
            else:
                if view.screen.state == "batch" and view.screen.origin == "queue" \
                        and view.screen.prompt.id != record.prompt.id:
                    with self.store.queue(write=True) as conn:  # taken again when the queue comes back to it
                        queue.release(conn, runtime.id, mode, view.screen.prompt.id, tab.connection)
                with self.store.queue(write=True) as conn:
                    queue.take(conn, runtime.id, mode, record.prompt.id, tab.who, tab.connection, self.clock(),
                               self.lease_seconds, force=True)
                listed = runtime.prompts.by_id(record.prompt.id)
                if listed is not None:
                    view.position = listed.index
            view.screen = back
            return retraction, back

    def _screen_of(self, record, mode: str, own: bool) -> Screen:
        """A record's batch back on screen: with its ticks when it is yours, as a relabel or an undone answer."""
        prompt = self._runtime().prompts.by_id(record.prompt.id) or Prompt(
            record.prompt.text, record.prompt.id, record.prompt.index, record.prompt.source)
        batch = answers.batch_from_record(record)
        ticks = tuple(getattr(record, "golden_seeds", ())) if own else ()
        supersedes = getattr(record, "supersedes", None)
        second = getattr(record, "second_opinion_of", None)
        origin = "relabel" if (supersedes or second) else "undo"
        return Screen(mode, "batch", prompt, batch, ticks=ticks, shown_at=time.monotonic(), shown_at_iso=utc_now(),
                      origin=origin, supersedes=supersedes, second_opinion_of=second)

    def relabel(self, caller: Caller, record_id: str) -> Screen:
        """Show an answer again: your own is relabelled (superseded); someone else's judgement gets your second
        opinion (both count). Pairwise answers open in the Pairwise view."""
        tab = self._tab(caller)
        with tab.lock:
            self._sync(tab)
            runtime = self._runtime()
            found = self.store.get(record_id) if isinstance(record_id, str) and len(record_id) == 32 else None
            if found is None or not found[1] or found[0].campaign != runtime.id:
                raise Refused(f"record_id: no live answer {str(record_id)[:40]!r} in this campaign (undone, "
                              "relabelled, or from another campaign).", "record_id")
            record = found[0]
            if record.kind not in ("judgement", "pairwise"):
                raise Refused("Only judgements and pairwise answers can be relabelled (a skip has nothing to change)."
                              , "record_id")
            own = identity(record.annotator) == tab.who
            if not own and record.kind == "pairwise":
                raise Refused("A pairwise answer can be changed only by the person who gave it.", "record_id")
            if not own:  # your own answer to this batch already counts? relabel that one
                mine = self.store.live_judgements(runtime.id, tab.annotator, record.batch_id) if record.batch_id \
                    else []
                if mine:
                    record, own = mine[-1], True
            mode = "pairwise" if record.kind == "pairwise" else "batch"
            view = tab.views[mode]
            if view.screen.state == "batch" and view.screen.origin == "queue":
                view.resume = view.screen
            screen = self._screen_of(record, mode, own)
            view.screen = replace(screen, origin="relabel", supersedes=record.record_id if own else None,
                                  # a relabelled second opinion stays a second opinion of the same answer
                                  second_opinion_of=getattr(record, "second_opinion_of", None) if own
                                  else record.record_id)
            return view.screen

    # The timer ------------------------------------------------------------------------------------------

    def renew(self, caller: Caller) -> dict[str, Screen]:
        """The tab is alive (every few seconds): keep its prompts held; move on from a prompt it lost; follow a
        campaign switch; take a freed prompt on a waiting screen. Returns the views whose screen changed."""
        tab = self.tabs.find(caller.connection) if caller.connection else None
        if tab is None or not tab.annotator or (self.access.logins and tab.login != caller.login):
            return {}
        self._follow()
        changed = {}
        with tab.lock:
            if self.runtime is None:
                return {}
            if tab.epoch != self.epoch:
                self._sync(tab)
                for mode in MODES:
                    try:
                        changed[mode] = self._show(tab, mode) if mode == "batch" else tab.views[mode].screen
                    except UserError:
                        changed[mode] = tab.views[mode].screen
                return changed
            with self.store.queue(write=True) as conn:
                held = queue.renew(conn, tab.connection, self.clock(), self.lease_seconds)
            for mode in MODES:
                screen = tab.views[mode].screen
                try:
                    if screen.state == "batch" and screen.origin in ("queue", "undo") and \
                            (self.runtime.id, mode, screen.prompt.id) not in held:
                        changed[mode] = self._advance(tab, mode, "That prompt was released (you opened more tabs, or "
                                                                 "it was idle too long); here is the next one.")
                    elif screen.state == "done":
                        with self.store.queue() as conn:
                            left = queue.progress_of(conn, self.runtime.id, mode, tab.who)["remaining_for_you"]
                        if left > 0 and self._advance(tab, mode, screen.notice).state == "batch":
                            changed[mode] = tab.views[mode].screen
                except UserError as error:
                    log.info("renewal of a %s view: %s", mode, error)
        return changed

    # History ----------------------------------------------------------------------------------------------

    def history(self, caller: Caller, everyone: bool = False, text: str = "", campaign: str | None = None) -> dict:
        """Your live answers (administrators: everyone's) in a campaign, newest first, with the campaigns to choose
        from: {"rows", "campaigns", "campaign", "everyone", "warnings"}."""
        tab = self._tab(caller)
        if not isinstance(text, str) or len(text) > 4000:
            raise UserError("text: must be a piece of prompt text (at most 4000 characters).", "text")
        if everyone and not tab.is_admin:
            raise Refused("everyone: only an administrator sees everyone's answers.", "everyone")
        runtime = self._runtime()
        known = [c or "(none)" for c in self.store.campaigns_of(None if everyone else tab.annotator)]
        campaigns = list(dict.fromkeys([runtime.id] + known))
        chosen = campaign if campaign in campaigns else runtime.id
        records = self.store.history(None if chosen == "(none)" else chosen, None if everyone else tab.annotator,
                                     text)
        return {"rows": [history_row(r) for r in records], "campaigns": campaigns, "campaign": chosen,
                "current": chosen == runtime.id, "everyone": bool(everyone), "warnings": self.store.warnings()}

    def record(self, caller: Caller, record_id: str):
        """(record, own) of a live answer you may see (yours; any, for administrators)."""
        tab = self._tab(caller)
        found = self.store.get(record_id) if isinstance(record_id, str) and len(record_id) == 32 else None
        if found is None or not found[1]:
            raise Refused(f"record_id: no live answer {str(record_id)[:40]!r}.", "record_id")
        record = found[0]
        own = identity(record.annotator) == tab.who
        if not own and not tab.is_admin:
            raise Refused("That answer is not yours.", "record_id")
        return record, own

    # Administration: the research side ----------------------------------------------------------------------

    def analyse(self, caller: Caller, with_selector: bool = True, progress=None) -> dict:
        from goldennoise.research import analysis  # lazy: heavy (scikit-learn, scipy, matplotlib)

        self._admin(caller)
        return analysis.run(self.outputs, campaign=self._runtime().id, with_selector=with_selector,
                            progress=progress, store=self.store)

    def export(self, caller: Caller, formats: list[str], progress=None) -> dict:
        from goldennoise.research import export  # lazy: heavy (datasets, pyarrow)

        self._admin(caller)
        return export.export(self.outputs, self.outputs / "exports", formats or list(export.FORMATS),
                             campaign=self._runtime().id, store=self.store)

    def close_all(self) -> None:
        """Stop background work (prefetches) and let the workers go."""
        if self.batches is not None:
            self.batches.close()
        if self.runtime is not None:
            self.runtime.close()
