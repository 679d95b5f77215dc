"""What the annotator waits for, measured in Chromium: Enter -> the next batch fully painted.

Run: .venv/bin/python benchmarks/browser_latency.py [--answers 15] [--think 1.0] [--baseline b400fbf]

Side by side in one run, localhost, tiny-flux, 4 images at 256x256, prefetch on:
  now:     `goldennoise app` (one round trip per answer), one annotator, then two annotators at once;
  chained: GoldenNoise 0.1 (commit 5cef289: submit -> get_next_prompt -> generate_batch, three queued
           events carrying the session state), checked out from git history into a temporary folder;
  baseline: `goldennoise app` of another commit (default b400fbf, 0.2.0 before the database store and the
           one annotation service), checked out likewise, one and two annotators, each run right after the
           same run of now (the machine's load drifts; `--baseline ""` skips it).
The clock runs in the page: from the Enter keydown to the animation frame after every image of the
next batch has been decoded (`data-painted`, or for 0.1 every gallery image loaded with new sources).
The annotator "thinks" `--think` seconds per batch (at least the 400 ms minimum viewing time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.browser import CHROMIUM, chromium, open_page, start_labelling, wait_batch  # noqa: E402
from tests.serve import free_port  # noqa: E402

OLD = "5cef289"
BASELINE = "b400fbf"
MARK_ENTER = """() => { if (!window.__gnBench) { window.__gnBench = true;
  window.addEventListener('keydown', (e) => { if (e.key === 'Enter') window.__enterAt = performance.now(); }, true); } }"""


def serve(command: list[str], cwd: Path, path: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start an app; `path`: the checkout whose `goldennoise` package it runs (else this one)."""
    import urllib.request

    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    process = subprocess.Popen([*command, "--port", str(port)], cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=2)
            return process, url
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{command} did not start")


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


PAINT_HOOK = """() => { if (window.__gnPaint) return; window.__gnPaint = true;
  const root = document.getElementById('gn-screen');
  new MutationObserver(() => { const e = root.querySelector('.gn-screen');
    if (e && e.dataset.painted === '1' && e.dataset.batch !== window.__seenBatch) {
      window.__seenBatch = e.dataset.batch; window.__lastLatency = performance.now() - window.__enterAt; } })
    .observe(root, {subtree: true, attributes: true, attributeFilter: ['data-painted']}); }"""


def old_latencies(browser, url: str, answers: int, think: float) -> list[float]:
    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    page.goto(url)
    page.get_by_label("Annotator").fill("bench-old")
    page.get_by_role("button", name="Load model").click()
    page.wait_for_selector("#gn-golden input[type=checkbox]", timeout=120_000)
    page.evaluate(MARK_ENTER)
    waits = []
    for _ in range(answers):
        time.sleep(think)
        before = page.evaluate("() => Array.from(document.querySelectorAll('#gn-gallery img')).map(i => i.src).join()")
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        waits.append(page.evaluate("""(before) => new Promise((resolve) => {
            const check = () => {
              const imgs = Array.from(document.querySelectorAll('#gn-gallery img'));
              const now = imgs.map(i => i.src).join();
              if (imgs.length >= 4 && now !== before && imgs.every(i => i.complete && i.naturalWidth > 0))
                resolve(performance.now() - window.__enterAt);
              else requestAnimationFrame(check);
            };
            requestAnimationFrame(check);
          })""", before))
    page.context.close()
    return waits


def now_run(browser, url: str, pages: int, answers: int, think: float) -> list[float]:
    views = [open_page(browser, url) for _ in range(pages)]
    batches = [start_labelling(page, f"bench-{pages}-{i}") for i, page in enumerate(views)]
    for page in views:
        page.evaluate(MARK_ENTER)
        page.evaluate(PAINT_HOOK)
    waits = []
    for _ in range(answers):
        time.sleep(think)
        for page in views:
            page.keyboard.press("1")
            page.keyboard.press("Enter")
        for i, page in enumerate(views):
            batches[i] = wait_batch(page, batches[i])
            waits.append(page.evaluate("() => window.__lastLatency"))
    for page in views:
        page.context.close()
    return waits


def line(name: str, waits: list[float]) -> str:
    return (f"  {name:<34} median {statistics.median(waits):6.0f} ms   p95 {percentile(waits, 95):6.0f} ms   "
            f"(n={len(waits)})")


def ratio_interval(now: list[float], base: list[float], draws: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of median(now) / median(base), resampling answers within each arm. The unit
    is one answer's wait within this run: the interval says how far the medians could move with other answers of the
    same run, not how far the machine's load drifts between runs (run the benchmark again for that)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a, b = np.asarray(now, float), np.asarray(base, float)
    ratios = (np.median(rng.choice(a, (draws, a.size)), axis=1) / np.median(rng.choice(b, (draws, b.size)), axis=1))
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=15)
    parser.add_argument("--think", type=float, default=1.0)
    parser.add_argument("--baseline", default=BASELINE, help="a commit whose app is measured beside this one")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit("needs Debian chromium (bash scripts/test.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "p.txt").write_text("".join(f"benchmark prompt number {i}\n" for i in range(3 * args.answers + 10)))
        old = tmp / "v0.1"
        old.mkdir()
        subprocess.run(f"git -C {ROOT} archive {OLD} | tar -x -C {old}", shell=True, check=True)
        base = tmp / "baseline"
        if args.baseline:
            base.mkdir()
            subprocess.run(f"git -C {ROOT} archive {args.baseline} | tar -x -C {base}", shell=True, check=True)
        measured = {}
        with chromium() as browser:
            for pages in (1, 2):
                for name, path in (("now", None), ("baseline", base if args.baseline else None)):
                    if name == "baseline" and path is None:
                        continue
                    app, url = serve([sys.executable, "-m", "goldennoise.cli", "app", "--model", "tiny-flux",
                                      "--prompts", str(tmp / "p.txt"), "--outputs", str(tmp / f"{name}-{pages}")],
                                     tmp, path)
                    try:
                        measured[name, pages] = now_run(browser, url, pages, args.answers, args.think)
                    finally:
                        app.terminate()
            one, two = measured["now", 1], measured["now", 2]
            old_app, old_url = serve([sys.executable, str(old / "app.py"), "--prompts", str(tmp / "p.txt"),
                                      "--outputs", str(tmp / "old")], old)
            try:
                chained = old_latencies(browser, old_url, args.answers, args.think)
            finally:
                old_app.terminate()
    print(f"Enter -> next batch fully painted, Chromium, localhost, tiny-flux 4x256^2, prefetch on, "
          f"{args.think:.1f} s per batch:")
    print(line("now, one annotator", one))
    print(line("now, two annotators at once", two))
    if args.baseline:
        print(line(f"{args.baseline}, one annotator", measured["baseline", 1]))
        print(line(f"{args.baseline}, two annotators at once", measured["baseline", 2]))
    print(line("0.1 chained path, one annotator", chained))
    print(f"  ratio now / chained (median): {statistics.median(one) / statistics.median(chained):.3f}   "
          f"targets: median <= 150 ms, p95 <= 300 ms")
    if args.baseline:
        parts = []
        for label, pages in (("one annotator", 1), ("two at once", 2)):
            mine, theirs = measured["now", pages], measured["baseline", pages]
            low, high = ratio_interval(mine, theirs)
            parts.append(f"{label} {statistics.median(mine) / statistics.median(theirs):.3f} "
                         f"[{low:.3f}, {high:.3f}]")
        print(f"  ratio now / {args.baseline} (median, [95% bootstrap over answers]): {', '.join(parts)}   "
              "target: <= 1 (issue 24)")


if __name__ == "__main__":
    main()
