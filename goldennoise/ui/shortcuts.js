() => {
  // GoldenNoise in the browser: ticks, keys and answers for the Workbench and Pairwise screens.
  // Loaded once through launch(js=...). It finds its elements by elem_id (#gn-screen, #gn-send, ...)
  // and by the classes of the HTML that goldennoise/ui/render.py writes, never by Gradio's own classes.
  //
  // Workbench: 1-9, 0 toggle image 1-10 (or click it) · Enter submits the ticks on screen, whatever has
  //            focus (except a text field) · a all · n none · s skip · u undo · f or arrows: larger view.
  // Pairwise:  1 or Left · 2 or Right · t tie · b both bad · s skip · u undo.
  // Everywhere: ? or h shows the campaign's guidelines (Esc closes them).
  // While an answer is on its way every shortcut is ignored; a submit counts only once the batch has been
  // fully painted for the campaign's minimum viewing time (the server checks it too).
  if (window.gn) return;
  const VIEWS = {
    batch: { root: "gn-workbench", screen: "gn-screen", send: "gn-send", msg: "gn-message" },
    pairwise: { root: "gn-pairwise", screen: "gn-pair-screen", send: "gn-pair-send", msg: "gn-pair-message" },
  };
  // seen: ms the painted batch has been on screen (only while its view is shown and the page visible).
  // ignored: presses that did nothing (an answer on its way, or a new batch not looked at yet), counted for tests.
  const fresh = () => ({ batch: null, busy: false, shownAt: 0, painted: false, seen: 0, since: null, events: [],
    pending: null, timer: 0, ignored: 0, extra: false });
  const st = { batch: fresh(), pairwise: fresh() };
  const screenOf = (v) => document.querySelector(`#${VIEWS[v].screen} .gn-screen`);
  const shown = (id) => { const el = document.getElementById(id); return el !== null && el.offsetParent !== null; };
  const activeView = () => (shown("gn-workbench") ? "batch" : shown("gn-pairwise") ? "pairwise" : null);
  const cells = () => Array.from(document.querySelectorAll("#gn-screen .gn-cell"));
  const now = () => performance.now();

  // Whether each view is on screen, with the time it changed (an IntersectionObserver stamps the moment itself,
  // so a busy page that runs its timers late still counts only the time the images were really shown).
  const inView = { batch: false, pairwise: false };
  const showing = (v) => st[v].painted && inView[v] && document.visibilityState === "visible";
  function account(v, at) {
    const s = st[v];
    const t = at === undefined ? now() : at;
    if (showing(v) && s.since === null) s.since = t;
    if (!showing(v) && s.since !== null) { s.seen += Math.max(0, t - s.since); s.since = null; }
  }
  const visibleMs = (v) => { account(v); const s = st[v]; return s.seen + (s.since !== null ? now() - s.since : 0); };
  setInterval(() => { account("batch"); account("pairwise"); }, 100);
  document.addEventListener("visibilitychange", () => { account("batch"); account("pairwise"); });

  // Ticks survive a detour (a relabel) or a reload of this tab: kept per batch id in sessionStorage, with the
  // keys and clicks that made them (so the record's interaction log still shows how they were made).
  const STASH = "goldennoise-ticks";
  function stash(batch, seeds) {
    let all = {};
    try { all = JSON.parse(sessionStorage.getItem(STASH) || "{}"); } catch (e) { all = {}; }
    delete all[batch];
    if (seeds.length) all[batch] = { seeds, events: st.batch.events.slice(-100) };
    const keys = Object.keys(all);
    for (const key of keys.slice(0, Math.max(0, keys.length - 10))) delete all[key];
    try { sessionStorage.setItem(STASH, JSON.stringify(all)); } catch (e) { /* storage full or off: not needed */ }
  }
  function stashed(batch) {
    let kept = null;
    try { kept = JSON.parse(sessionStorage.getItem(STASH) || "{}")[batch] || null; } catch (e) { kept = null; }
    if (Array.isArray(kept)) return { seeds: kept, events: [] };  // kept by an earlier version of this page
    return kept || { seeds: [], events: [] };
  }
  const tickedSeeds = () => cells().filter((c) => c.classList.contains("gn-ticked")).map((c) => c.dataset.seed);

  function log(v, how, action, i) {
    const s = st[v];
    if (s.events.length >= 200) return;
    const t = Math.round(now() - s.shownAt);
    s.events.push(i === undefined ? { t, k: how, a: action } : { t, k: how, a: action, i });
  }
  function say(v, text, kind) {
    const host = document.getElementById(VIEWS[v].msg);
    const line = host && host.querySelector(".gn-msg");
    if (!line) return;
    line.textContent = text;
    line.className = "gn-msg gn-" + (kind || "refused");
  }
  function setTick(cell, on) {
    cell.classList.toggle("gn-ticked", on);
    cell.setAttribute("aria-pressed", on ? "true" : "false");
  }
  function toggle(i, how) {
    const cell = cells()[i];
    if (!cell) return;
    setTick(cell, !cell.classList.contains("gn-ticked"));
    log("batch", how, "toggle", i + 1);
    stash(st.batch.batch, tickedSeeds());
    lightbox.sync();
  }
  function tickAll(on, how) {
    cells().forEach((c) => setTick(c, on));
    log("batch", how, on ? "all" : "none");
    stash(st.batch.batch, tickedSeeds());
    lightbox.sync();
  }

  // A reply arrived: the transition is over. A new batch counts as visible once its images are painted.
  // Only a reply ends a transition: a new screen, or a new message (each reply's message has a new data-n).
  // Gradio also touches these elements when an event starts (its status tracker); that must not free the keys.
  function arrived(v) {
    const s = st[v];
    const el = screenOf(v);
    const id = el && el.dataset.batch ? el.dataset.batch : null;
    if (id === s.batch) return;
    s.busy = false;
    s.batch = id; s.shownAt = now(); s.painted = false; s.seen = 0; s.since = null; s.events = [];
    if (v === "batch") {
      lightbox.close();
      if (id && el.dataset.ticks === "") {  // ticks made here before a detour or a reload
        const keep = stashed(id);
        let restored = 0;
        cells().forEach((c) => { if (keep.seeds.includes(c.dataset.seed)) { setTick(c, true); restored += 1; } });
        if (restored) {  // said on the screen itself: the message line belongs to the server's reply
          s.events = keep.events.concat([{ t: 0, k: "restore", a: "ticks", i: restored }]);
          const note = document.createElement("div");
          note.className = "gn-notice gn-restored";
          note.setAttribute("role", "status");
          note.textContent = `Your earlier ticks on this batch are back (${restored}): check them before you submit.`;
          const top = el.querySelector(".gn-top");
          if (top) top.after(note); else el.prepend(note);
        }
      }
    }
    if (!id) return;
    const images = Array.from(el.querySelectorAll("img"));
    Promise.all(images.map((img) => img.decode().catch(() => null))).then(() => {
      requestAnimationFrame(() => requestAnimationFrame(() => {
        if (s.batch !== id) return;
        s.painted = true;
        account(v);
        el.dataset.painted = "1";
      }));
    });
  }
  const observed = {};
  function observe() {
    for (const v of Object.keys(VIEWS)) {
      if (observed[v]) continue;
      const root = document.getElementById(VIEWS[v].screen);
      const msg = document.getElementById(VIEWS[v].msg);
      if (!root || !msg) continue;
      observed[v] = true;
      const box = document.getElementById(VIEWS[v].root);
      if (box) {
        new IntersectionObserver((entries) => {
          for (const entry of entries) { inView[v] = entry.isIntersecting; account(v, entry.time); }
        }).observe(box);
      }
      new MutationObserver(() => arrived(v)).observe(root, { childList: true, subtree: true });
      const nonce = () => { const line = msg.querySelector(".gn-msg"); return line ? line.dataset.n : null; };
      let last = nonce();
      new MutationObserver(() => {
        const n = nonce();
        if (n !== last) {
          last = n;
          st[v].busy = false;
          if (st[v].extra) { st[v].extra = false; noteExtra(v, false); }  // pressed again while this reply was on its way
        }
      }).observe(msg, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-n"] });
      arrived(v);
    }
    if (!observed.batch || !observed.pairwise) setTimeout(observe, 200);
  }
  observe();

  // A press that does nothing right after an answer: the confirmation of the answer stays, and says so.
  function noteExtra(v, count = true) {
    if (count) st[v].ignored += 1;
    const line = document.querySelector(`#${VIEWS[v].msg} .gn-msg`);
    if (!line || !line.classList.contains("gn-info") || !/^(Saved|Skipped)/.test(line.textContent)) return false;
    if (!/extra press/.test(line.textContent)) {
      line.textContent += " (An extra press was ignored: the new images need a look first.)";
    }
    return true;
  }

  // Answers go to the server through a hidden Gradio button whose js= takes the payload (one round trip).
  function send(v, action, how) {
    const s = st[v];
    const el = screenOf(v);
    if (s.busy) return;
    if (action !== "undo" && action !== "retry") {
      if (!el || !el.dataset.batch) return;
      const minimum = Number(el.dataset.minView || 0);
      const seen = s.painted ? visibleMs(v) : -1;
      if (action !== "skip" && seen < minimum) {
        if (noteExtra(v)) return;  // a second press right after an answer: the first is saved; say so, keep it said
        say(v, seen < 0 ? "The images are still loading…" :
          `Not recorded: look at the images a moment longer (at least ${minimum} ms).`);
        return;
      }
    }
    log(v, how, action);
    const golden = v === "batch" ? tickedSeeds() : [];
    s.pending = JSON.stringify({
      action, batch: s.batch, golden, visible_ms: s.painted ? Math.round(visibleMs(v)) : null,
      interaction: s.events,
    });
    s.busy = true;
    clearTimeout(s.guard);
    s.guard = setTimeout(() => { s.busy = false; }, 60000);  // a reply that never comes must not lock the keys
    const host = document.getElementById(VIEWS[v].send);
    const button = host && (host.tagName === "BUTTON" ? host : host.querySelector("button"));
    if (button) button.click(); else s.busy = false;
  }

  // The larger view: the image at full resolution; number keys, space or a click tick it.
  const lightbox = {
    el: null, i: 0,
    open(i) {
      const list = cells();
      if (!list.length) return;
      if (!this.el) {
        this.el = document.createElement("div");
        this.el.id = "gn-lightbox";
        this.el.innerHTML = "<img alt=''><div class='gn-lb-caption'></div><div class='gn-lb-buttons'>" +
          "<button type='button' data-lb='prev'>‹ previous</button><button type='button' data-lb='tick'>tick ✓</button>" +
          "<button type='button' data-lb='next'>next ›</button><button type='button' data-lb='close'>close ✕</button></div>";
        this.el.addEventListener("click", (ev) => {
          // Only the picture itself (sized to its pixels, no letterbox bands) or the tick button ticks; a tap on
          // the dark background around it closes the larger view.
          const lb = ev.target.dataset && ev.target.dataset.lb;
          if (ev.target.tagName === "IMG" || lb === "tick") toggle(this.i, "click");
          else if (lb === "prev" || lb === "next") this.open(this.i + (lb === "next" ? 1 : -1));
          else this.close();
        });
        document.body.appendChild(this.el);
      }
      this.i = (i + list.length) % list.length;
      this.el.querySelector("img").src = list[this.i].querySelector("img").src;
      this.el.style.display = "flex";
      this.sync();
    },
    isOpen() { return this.el !== null && this.el.style.display === "flex"; },
    close() { if (this.el) this.el.style.display = "none"; },
    sync() {
      if (!this.isOpen()) return;
      const cell = cells()[this.i];
      if (!cell) return this.close();
      const ticked = cell.classList.contains("gn-ticked");
      this.el.classList.toggle("gn-ticked", ticked);
      this.el.querySelector(".gn-lb-caption").textContent =
        `#${this.i + 1} · seed ${cell.dataset.seed} · ${ticked ? "✓ golden" : "not ticked"} — click, space or ${this.i + 1} to tick · ← → · Esc`;
    },
  };

  // The campaign's guidelines, over every view: ? or h (or the Guidelines button) opens them, Esc or a click closes.
  const guide = {
    el: () => document.getElementById("gn-guide"),
    isOpen() { const g = this.el(); return g !== null && g.classList.contains("gn-open"); },
    toggle(on) {
      const g = this.el();
      if (!g) return;
      g.classList.toggle("gn-open", on === undefined ? !this.isOpen() : on);
    },
  };
  document.addEventListener("click", (ev) => {
    if (guide.isOpen() && ev.target.closest && !ev.target.closest("[data-action=guide]")) guide.toggle(false);
  }, true);

  const OURS = /^([0-9]|Enter|a|n|s|u|f| |t|b|Escape|ArrowLeft|ArrowRight)$/;
  function workbenchKey(ev) {
    const k = ev.key;
    if (ev.repeat) return OURS.test(k);  // a held key acts once
    if (st.batch.busy) {
      if (k === "Enter" || k === "s") { st.batch.ignored += 1; st.batch.extra = true; }
      return /^[0-9]$/.test(k) || ["Enter", "a", "n", "s", "u", "f", " "].includes(k);
    }
    if (lightbox.isOpen()) {
      if (k === "Escape" || k === "f") { lightbox.close(); return true; }
      if (k === "ArrowRight" || k === "ArrowLeft") { lightbox.open(lightbox.i + (k === "ArrowRight" ? 1 : -1)); return true; }
      if (k === " ") { toggle(lightbox.i, "key"); return true; }
    }
    if (/^[0-9]$/.test(k)) { toggle(k === "0" ? 9 : Number(k) - 1, "key"); return true; }
    if (k === "Enter") {
      const el = screenOf("batch");
      send("batch", el && !el.dataset.batch && el.querySelector("[data-action=retry]") ? "retry" : "submit", "key");
      return true;
    }
    if (k === "a") { tickAll(true, "key"); return true; }
    if (k === "n") { tickAll(false, "key"); return true; }
    if (k === "s") { send("batch", "skip", "key"); return true; }
    if (k === "u") { send("batch", "undo", "key"); return true; }
    if (k === "f" || k === "ArrowRight" || k === "ArrowLeft") { lightbox.open(0); return true; }
    return false;
  }
  function pairKey(ev) {
    const actions = { "1": "left", ArrowLeft: "left", "2": "right", ArrowRight: "right", t: "tie", b: "both_bad",
      s: "skip", u: "undo" };
    const action = actions[ev.key];
    if (!action) return ev.key === "Enter";  // Enter never re-fires a focused button here
    if (!ev.repeat && !st.pairwise.busy) send("pairwise", action, "key");  // a held key acts once
    return true;
  }
  const typing = (t) => t && (t.isContentEditable || t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
    (t.tagName === "INPUT" && !["checkbox", "radio", "button", "submit", "range"].includes(t.type)));

  // Capture phase: Enter submits even when a button has focus, and never "presses" that button again.
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing || typing(ev.target)) return;
    if (ev.key === "?" || ev.key === "h" || (ev.key === "Escape" && guide.isOpen())) {
      if (!ev.repeat) guide.toggle(ev.key === "Escape" ? false : undefined);
      ev.preventDefault(); ev.stopPropagation();
      return;
    }
    const v = activeView();
    if (!v) return;
    const handled = v === "batch" ? workbenchKey(ev) : pairKey(ev);
    if (handled) { ev.preventDefault(); ev.stopPropagation(); }
  }, true);
  // Clicks on our own buttons never leave focus behind (so no key can repeat them).
  document.addEventListener("mousedown", (ev) => {
    if (ev.target.closest && ev.target.closest(".gn-screen button")) ev.preventDefault();
  }, true);
  document.addEventListener("click", (ev) => {
    const target = ev.target.closest && ev.target.closest(".gn-screen button");
    if (!target) return;
    const v = target.closest(".gn-screen").dataset.view;
    if (target.classList.contains("gn-cell")) {
      if (!st.batch.busy) toggle(cells().indexOf(target), "click");
      return;
    }
    const action = target.dataset.action;
    if (v === "batch" && action === "all") tickAll(true, "click");
    else if (v === "batch" && action === "none") tickAll(false, "click");
    else if (v === "batch" && action === "zoom") lightbox.open(0);
    else if (action === "guide") guide.toggle();
    else if (action) send(v, action, "click");
  });

  window.gn = {
    take: (v) => { const p = st[v].pending; st[v].pending = null; return p || "{}"; },
    state: (v) => ({ batch: st[v].batch, busy: st[v].busy, visibleMs: st[v].painted ? visibleMs(v) : null,
      ignored: st[v].ignored }),
  };
}
