"""The scriptable API: named endpoints with diffusers' names, keywords with defaults, structured JSON out.

The design's loop, for a client that labels a campaign end to end:

    from gradio_client import Client
    c = Client("http://127.0.0.1:7860/", auth=("boss", "pw"))
    c.predict(model="FLUX.1-schnell", num_inference_steps=4, api_name="/init_model")   # administrators
    c.predict(annotator="ada", api_name="/start")
    held = c.predict(api_name="/get_next_prompt")                   # this client's next prompt, held for it
    batch = c.predict(api_name="/generate_batch")                   # its images, seeds, scores, noise provenance
    c.predict(batch_id=batch["batch_id"], golden_seeds=[batch["seeds"][0]], api_name="/submit_selection")

Every answer names the batch it answers (`batch_id`) and is refused, with a clear
message, if that batch is not one this client may answer (already answered, undone,
released, never shown). The same rules as the browser apply: the campaign's minimum
viewing time, your own records only for undo and relabel, administrators only for
switching and explicit batches. Each client (each `Client`) is one tab. Every endpoint
is an adapter over one command of the annotation service.
"""

from __future__ import annotations

import functools
import inspect
import time

import gradio as gr

from goldennoise.annotation import settings as campaign_settings
from goldennoise.annotation.service import Service
from goldennoise.errors import UserError
from goldennoise.ui.common import caller_of, explain
from goldennoise.ui.guard import image_url

ANSWERS_AT_ONCE = 4  # answers (browser and API alike) at once: on a few cores more only take the GIL from each other


def _guard(fn):
    """Errors for API callers: a UserError's own message, or a generic one (logged with its traceback)."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001
            raise gr.Error(explain(error), print_exception=False) from None
    return call


def _ms(begin: float) -> float:
    """Milliseconds spent in the handler since `begin` (answers report it as `server_ms`)."""
    return round((time.perf_counter() - begin) * 1000, 2)


def describe(service: Service, caller, screen, provenance: bool = False, answered=None) -> dict:
    """A screen as data: batch id, prompt, seeds, images, (scores unless blind), ticks, progress (`answered`: the
    answer just given, whose transaction read it)."""
    c = service.campaign
    out = {"mode": screen.mode, "state": screen.state, "campaign": c.id, "notice": screen.notice,
           "progress": service.progress(caller, screen.mode, answered)}
    if screen.prompt is not None:
        out["prompt"] = {"id": screen.prompt.id, "text": screen.prompt.text, "index": screen.prompt.index}
    if screen.state == "batch":
        batch = screen.batch
        out.update(batch_id=batch.batch_id, seeds=list(batch.seeds), ticks=list(screen.ticks), origin=screen.origin,
                   supersedes=screen.supersedes, second_opinion_of=screen.second_opinion_of,
                   min_view_ms=c.min_view_ms,
                   images=[{"position": i + 1, "seed": s, "image_path": p, "image_url": image_url(p)}
                           for i, (s, p) in enumerate(zip(batch.seeds, batch.image_paths))])
        if not c.blind or (screen.origin in ("explicit", "request") and service.is_admin(caller)):
            out["clip_scores"] = batch.clip_scores
            if batch.scores:
                out["scores"] = batch.scores  # verifier name -> a score per seed
        # a candidate's noise block names its source (and its latents differ from the seed's draw): annotators of a
        # campaign with a noise source must not learn which candidates those are
        if provenance:
            out["parameters"], out["model"] = batch.parameters, batch.model
            if c.noise_source == "seed" or service.is_admin(caller):
                out["noise"] = batch.noise
    return out


def summary(record) -> dict | None:
    if record is None:  # a skipped relabel: nothing was recorded
        return None
    data = {"record_id": record.record_id, "kind": record.kind, "prompt_id": record.prompt.id,
            "campaign": record.campaign, "annotator": record.annotator}
    for name in ("batch_id", "golden_seeds", "bad_seeds", "verdict", "supersedes", "second_opinion_of", "retracts"):
        if getattr(record, name, None) is not None:
            data[name] = getattr(record, name)
    if record.kind == "pairwise":
        data["preference"] = record.preference.model_dump()
    if getattr(record, "samples", None):
        data["clip_scores"] = [s.clip_score for s in record.samples]
        if any(s.scores for s in record.samples):
            data["scores"] = [s.scores for s in record.samples]
    return data


def _settings_endpoint(service: Service, name: str, fields: tuple[str, ...], doc: str):
    """An administrator's endpoint taking campaign settings as keywords (omitted or None: unchanged; "": the
    model's default), derived from the campaign's one definition."""
    known = [campaign_settings.BY_NAME[n] for n in fields if n in campaign_settings.BY_NAME]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(f.name, kind, default=None, annotation=f.python_type | None) for f in known]
    params.append(inspect.Parameter("request", kind, default=None, annotation=gr.Request))
    signature = inspect.Signature(params, return_annotation=dict)

    def endpoint(*args, **kwargs) -> dict:
        bound = signature.bind(*args, **kwargs)
        request = bound.arguments.pop("request", None)
        values = {k: v for k, v in bound.arguments.items() if v is not None}
        caller = caller_of(request)
        runtime = service.switch(caller, campaign_settings.changes(service.campaign, values))
        return {"id": runtime.id, "prompts": len(runtime.prompts), "settings": service.settings(admin=True)}

    endpoint.__signature__ = signature
    endpoint.__annotations__ = {p.name: p.annotation for p in params} | {"return": dict}
    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__doc__ = doc
    return _guard(endpoint)


def register(service: Service) -> None:
    """Register every endpoint (inside a Blocks)."""

    @_guard
    def start(annotator: str = "", tab: str | None = None, request: gr.Request = None) -> dict:
        """Say who you are (with logins, your login is used whatever you send); returns the first screen."""
        caller = caller_of(request)
        screen = service.join(caller, annotator, tab)
        return {"annotator": service.annotator_of(caller), "administrator": service.is_admin(caller),
                "screen": describe(service, caller, screen)}

    @_guard
    def screen(mode: str = "batch", request: gr.Request = None) -> dict:
        """The current screen of a view ("batch" or "pairwise"), taking the next prompt if it has none."""
        caller = caller_of(request)
        return describe(service, caller, service.show(caller, mode))

    @_guard
    def get_next_prompt(mode: str = "batch", annotator: str | None = None, request: gr.Request = None) -> dict:
        """This client's next prompt, held for it (the one it holds already, if any): state "held" (or "batch" when
        its batch is already made) or "done". A client that has not called /start says who it is here (with
        logins, its login is used)."""
        caller = caller_of(request)
        return describe(service, caller, service.next_prompt(caller, mode, annotator))

    @_guard
    def generate_batch(prompt: str | None = None, seeds: list[int] | None = None, parameters: dict | None = None,
                       mode: str = "batch", request: gr.Request = None) -> dict:
        """The batch of the prompt this client holds; or (administrators) of an explicit prompt, seeds and
        generation parameters (num_inference_steps, guidance_scale, height, width, ...). Returns seeds, image
        paths and URLs, CLIP scores (not to annotators of a blind campaign) and each seed's noise provenance (in a
        campaign with a noise source, to administrators only)."""
        begin = time.perf_counter()
        caller = caller_of(request)
        made = service.make_batch(caller, prompt, seeds, parameters, mode)
        return {**describe(service, caller, made, provenance=True), "server_ms": _ms(begin)}

    @_guard
    def submit_selection(batch_id: str, golden_seeds: list[int] | None = None, visible_ms: int | None = None,
                         request: gr.Request = None) -> dict:
        """Judge the batch `batch_id`: `golden_seeds` are golden, the other seeds shown are bad."""
        begin = time.perf_counter()
        caller = caller_of(request)
        done = service.answer(caller, "batch", batch_id, golden=golden_seeds or [], visible_ms=visible_ms)
        return {"record": summary(done.record), "next": describe(service, caller, done.screen, answered=done),
                "message": done.message, "server_ms": _ms(begin)}

    @_guard
    def skip_prompt(batch_id: str, mode: str = "batch", request: gr.Request = None) -> dict:
        """Pass over the batch `batch_id` (recorded as a skip, never a judgement)."""
        begin = time.perf_counter()
        caller = caller_of(request)
        done = service.answer(caller, mode, batch_id, skip=True)
        return {"record": summary(done.record), "next": describe(service, caller, done.screen, answered=done),
                "message": done.message, "server_ms": _ms(begin)}

    @_guard
    def submit_pair(batch_id: str, winner: str, visible_ms: int | None = None, request: gr.Request = None) -> dict:
        """Answer the pair `batch_id`: winner "left", "right", "tie" or "both_bad"."""
        begin = time.perf_counter()
        caller = caller_of(request)
        done = service.answer(caller, "pairwise", batch_id, winner=winner, visible_ms=visible_ms)
        return {"record": summary(done.record), "next": describe(service, caller, done.screen, answered=done),
                "message": done.message, "server_ms": _ms(begin)}

    @_guard
    def undo_last(mode: str = "batch", request: gr.Request = None) -> dict:
        """Retract this client's last answer in a view; its batch is back on screen."""
        caller = caller_of(request)
        record, back = service.undo(caller, mode)
        return {"record": summary(record), "screen": describe(service, caller, back)}

    @_guard
    def history(everyone: bool = False, text: str = "", campaign: str | None = None,
                request: gr.Request = None) -> dict:
        """Your live answers in a campaign (default: the running one), newest first (everyone's: administrators),
        with the unreadable lines of imported records files that were skipped."""
        found = service.history(caller_of(request), everyone, text, campaign)
        return {"rows": found["rows"], "campaign": found["campaign"], "campaigns": found["campaigns"],
                "skipped_lines": found["warnings"]}

    @_guard
    def relabel(record_id: str, request: gr.Request = None) -> dict:
        """Show an answer again: yours is relabelled (superseded), someone else's gets your second opinion."""
        caller = caller_of(request)
        return describe(service, caller, service.relabel(caller, record_id))

    @_guard
    def campaign(request: gr.Request = None) -> dict:
        """The running campaign's settings (read-only for annotators; no server paths; the noise source for
        administrators only)."""
        return service.settings(service.is_admin(caller_of(request)))

    init_model = _settings_endpoint(service, "init_model", campaign_settings.MODEL_FIELDS,
                                    "Administrators: load a model with its generation parameters (a campaign switch; "
                                    "omitted values unchanged, \"\" the model's default).")
    switch_campaign = _settings_endpoint(service, "switch_campaign", tuple(campaign_settings.BY_NAME),
                                         "Administrators: run the campaign with these settings changed (omitted: "
                                         "unchanged, \"\" the model's default).")
    answers = dict(concurrency_id="answers", concurrency_limit=ANSWERS_AT_ONCE)
    for fn in (start, screen, get_next_prompt, submit_selection, skip_prompt, submit_pair, undo_last, relabel):
        gr.api(fn, api_name=fn.__name__, **answers)
    gr.api(generate_batch, api_name="generate_batch", concurrency_id="generate", concurrency_limit=2)
    for fn in (history, campaign):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
    for fn in (init_model, switch_campaign):
        gr.api(fn, api_name=fn.__name__, concurrency_id="switch", concurrency_limit=1)


__all__ = ["register", "describe", "summary", "UserError"]
