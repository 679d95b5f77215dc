"""The store at the size of the field's datasets: 0, 100k and 1M answers of one campaign, side by side.

Run: .venv/bin/python benchmarks/store.py [--sizes 0,100000,1000000] [--postgresql 100000] [--keep DIR]
     [--no-heavy | --heavy-max 100000] [--warm]

For each size one campaign (tiny-flux 64x64, batches of 4, a pool of 256 seeds, two annotators on
every prompt with overlap 1) gets that many judgements, written straight into the store (the rows the
app would write: the same codec, the same live flags and queue state, then `queue.rebuild`); 10,000
prompts stay open for a newcomer. Then, with the README's command (`goldennoise app`), printed per
size: the app's start until it serves, its memory (RSS) after start, a newcomer's first screen, 40
submits (p50/p95 of the server's own time and of the client's round trip), one annotator's History
(500 newest of her half of the answers), and the peak memory of `goldennoise analyze` and `goldennoise
export --formats table` on the campaign. Sizes are run in one process, one after the other; the
ratios to the empty store are printed last. `--postgresql N` does the same for N answers on a
PostgreSQL server started in a temporary folder (tests/pg.py). `--warm` reads each SQLite store once
before its app starts (a running server's page cache): a 1M store measured cold after other work read
its 5 GB from disk during the submits (p50 x1.83 of the empty store; warm x0.88).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

OPEN = 10_000
POOL = 256
CAMPAIGN = """name = "store-bench"
[model]
id = "tiny-flux"
[generation]
height = 64
width = 64
num_inference_steps = 2
[prompts]
file = "prompts.txt"
[seeds]
strategy = "pool"
pool_size = {pool}
batch_size = 4
[annotation]
overlap = 1.0
min_view_ms = 0
"""


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def build(folder: Path, answers: int, store: str | None) -> Path:
    """A campaign folder with `answers` judgements in its store; returns the campaign file."""
    import torch
    from sqlalchemy import insert as sql_insert

    from goldennoise.annotation import runtime
    from goldennoise.generation import models
    from goldennoise.generation.pipeline import GenerationParams, prepare
    from goldennoise.store import codec, database, queue, schema
    from goldennoise.store import campaign as campaigns
    from goldennoise.store.live import group_key
    from goldennoise.store.prompts import prompt_id
    from goldennoise.store.records import RecordStore

    folder.mkdir(parents=True, exist_ok=True)
    prompt_count = answers // 2 + OPEN
    with open(folder / "prompts.txt", "w") as handle:
        for i in range(prompt_count):
            handle.write(f"benchmark prompt number {i} of a large campaign\n")
    (folder / "campaign.toml").write_text(CAMPAIGN.format(pool=POOL))
    records = RecordStore(folder / "outputs", store)
    resolved, prompts = runtime.resolve(campaigns.load(folder / "campaign.toml"), records, folder / "outputs")
    (folder / "campaign_id.txt").write_text(resolved.id)  # measure() checks that the app runs this campaign
    if not answers:
        return folder / "campaign.toml"
    model = models.load_model("tiny-flux")
    params = GenerationParams(2, 0.0, 64, 64, 256)
    seeds_all = list(range(POOL))
    _, _, _, blocks, _ = prepare(model, seeds_all, params)
    block_of = dict(zip(seeds_all, blocks))
    info = model.info()
    template = {"created_at": "2026-12-02T00:00:00.000Z", "campaign": resolved.id, "model": info,
                "parameters": {**params.to_dict(), "runtime": {"device": "cpu"}},
                "seed_strategy": {"name": "pool", "start_seed": 0, "batch_size": 4, "pool_size": POOL},
                "clip_model": None, "view": "batch", "shown_scores": False, "interaction": [],
                "versions": {"goldennoise": "bench"}, "kind": "judgement", "schema_version": 3,
                "timing": {"visible_ms": 1200, "source": "pregenerated"}}
    rng = torch.Generator().manual_seed(0)
    engine = records.engine
    start, chunk = time.perf_counter(), 5000
    rows_done = 0
    for first in range(0, answers, chunk):
        rows = []
        for n in range(first, min(answers, first + chunk)):
            p, who = n // 2, f"ann-{n % 2}"
            pick = torch.randperm(POOL, generator=rng)[:4].tolist()
            golden = [s for s in pick if (s * 7 + p) % 3 == 0]
            record_id = f"{n:032x}"
            text = f"benchmark prompt number {p} of a large campaign"
            prompt = {"text": text, "id": prompt_id(text), "index": p, "source": "prompts.txt"}
            batch_id = f"b{p:031x}"
            data = {**template, "record_id": record_id, "annotator": who, "session_id": f"s{n % 2}",
                    "prompt": prompt, "seeds": pick, "batch_id": batch_id,
                    "samples": [{"seed": s, "golden": s in golden, "clip_score": None,
                                 "image_path": f"images/bench/{p % 97}/{s}.png", "noise": block_of[s]} for s in pick],
                    "golden_seeds": golden, "bad_seeds": [s for s in pick if s not in golden],
                    "verdict": "none_golden" if not golden else "all_golden" if len(golden) == 4 else "some_golden",
                    "supersedes": None, "second_opinion_of": None, "prefilter": None}
            rows.append({"record_id": record_id, "kind": "judgement", "campaign": resolved.id, "annotator": who,
                         "prompt_id": prompt["id"], "prompt_text": prompt["text"], "mode": "batch",
                         "batch_id": batch_id, "session_id": data["session_id"], "retracts": None,
                         "supersedes": None, "second_opinion_of": None,
                         "grp": group_key(resolved.id, who, batch_id, record_id), "created_at": data["created_at"],
                         "live": True, "body": codec.encode_data(data)})
        if first == 0:
            schema.parse(json.loads(json.dumps(data)))  # the rows are valid records
        with database.writing(engine) as conn:
            conn.execute(sql_insert(database.records), rows)
        rows_done += len(rows)
        print(f"\r  writing rows: {rows_done}/{answers} ({time.perf_counter() - start:.0f} s)", end="", flush=True)
    with database.writing(engine) as conn:
        queue.rebuild(conn, resolved.id)
    print(f"\r  wrote {answers} rows in {time.perf_counter() - start:.0f} s" + " " * 20)
    records.close()
    return folder / "campaign.toml"


def serve(campaign: Path, outputs: Path, store: str | None):
    """The README's command; (process, url, seconds until it serves)."""
    from tests.serve import free_port

    port = free_port()
    command = [sys.executable, "-m", "goldennoise.cli", "app", "--campaign", str(campaign), "--outputs", str(outputs),
               "--port", str(port), "--no-prefetch"] + (["--store", store] if store else [])
    began = time.perf_counter()
    log = campaign.parent / "app.log"
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=campaign.parent, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return process, url, time.perf_counter() - began
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the app stopped:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)


def peak(command: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of a command run to its end."""
    wrapper = ("import resource, runpy, sys; sys.argv = sys.argv[1:]; "
               "code = 0\ntry:\n    runpy.run_module('goldennoise.cli', run_name='__main__')\n"
               "except SystemExit as e:\n    code = e.code or 0\n"
               "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)")
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, "goldennoise", *command], cwd=cwd, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - began
    line = [x for x in done.stderr.splitlines() if x.startswith("PEAK")]
    if done.returncode or not line:
        raise RuntimeError(done.stderr[-2000:])
    return seconds, float(line[-1].split()[1])


def warm(outputs: Path) -> None:
    """Read the SQLite store's files once, as a server that has been running has them in the page cache (without
    it, the first store measured after other work reads a 5 GB file from disk: a cold start, not the steady state)."""
    for path in sorted(outputs.glob("goldennoise.db*")):
        with open(path, "rb") as handle:
            while handle.read(64 << 20):
                pass


def measure(campaign: Path, store: str | None, label: str, heavy: bool, warmed: bool = False) -> dict:
    from gradio_client import Client

    outputs = campaign.parent / "outputs"
    if warmed and not store:
        warm(outputs)
    process, url, started = serve(campaign, outputs, store)
    out = {"label": label, "start_s": started}
    try:
        time.sleep(1.0)
        out["rss_mb"] = rss_mb(process.pid)
        client = Client(url, verbose=False)
        built = campaign.parent / "campaign_id.txt"
        running = client.predict(api_name="/campaign")["id"]
        if not built.exists() or built.read_text() != running:  # else the answers were not the app's own
            raise RuntimeError(f"the app runs campaign {running}, the store's answers are of "
                               f"{built.read_text() if built.exists() else 'an unknown campaign'}: rebuild the folder")
        began = time.perf_counter()
        screen = client.predict(annotator="newcomer", api_name="/start")["screen"]
        out["first_screen_ms"] = (time.perf_counter() - began) * 1000
        server, wall = [], []
        for _ in range(40):
            began = time.perf_counter()
            reply = client.predict(batch_id=screen["batch_id"], golden_seeds=screen["seeds"][:1],
                                   api_name="/submit_selection")
            wall.append((time.perf_counter() - began) * 1000)
            server.append(reply["server_ms"])
            screen = reply["next"]
        out.update(submit_p50=statistics.median(server), submit_p95=pct(server, 95),
                   round_p50=statistics.median(wall), round_p95=pct(wall, 95))
        veteran = Client(url, verbose=False)
        veteran.predict(annotator="ann-0", api_name="/start")
        began = time.perf_counter()
        rows = veteran.predict(api_name="/history")["rows"]
        out["history_ms"], out["history_rows"] = (time.perf_counter() - began) * 1000, len(rows)
        if label.split()[-1] != "0" and not rows:
            raise RuntimeError("ann-0's History is empty: the app does not serve the store's answers")
        out["rss_after_mb"] = rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    if heavy:
        from goldennoise.store.records import RecordStore

        records = RecordStore(outputs, store)
        campaign_id = next(c for c in records.campaign_ids() if c.startswith("store-bench"))
        records.close()
        extra = ["--store", store] if store else []
        out["analysis_s"], out["analysis_mb"] = peak(["analyze", str(outputs), "--campaign-id", campaign_id,
                                                      "--no-selector", *extra], campaign.parent)
        out["export_s"], out["export_mb"] = peak(["export", str(outputs), str(campaign.parent / "exports"),
                                                  "--formats", "table", "--campaign-id", campaign_id, *extra],
                                                 campaign.parent)
    return out


def line(m: dict) -> str:
    text = (f"  {m['label']:>16}: start {m['start_s']:5.1f} s | RSS {m['rss_mb']:6.0f} MB (after 40 submits "
            f"{m['rss_after_mb']:5.0f}) | first screen {m['first_screen_ms']:5.0f} ms | submit p50/p95 "
            f"{m['submit_p50']:5.1f}/{m['submit_p95']:5.1f} ms server, {m['round_p50']:5.0f}/{m['round_p95']:5.0f} "
            f"ms round trip | History {m['history_ms']:5.0f} ms ({m['history_rows']} rows)")
    if "analysis_mb" in m:
        text += (f"\n  {'':>16}  analyze peak {m['analysis_mb']:6.0f} MB in {m['analysis_s']:5.0f} s | export "
                 f"(table) peak {m['export_mb']:6.0f} MB in {m['export_s']:5.0f} s")
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0,100000,1000000")
    parser.add_argument("--postgresql", type=int, default=100_000, help="answers on PostgreSQL (0: skip)")
    parser.add_argument("--keep", default=None, help="build (or reuse) the stores under this folder")
    parser.add_argument("--no-heavy", action="store_true", help="skip analyze and export")
    parser.add_argument("--warm", action="store_true",
                        help="read each SQLite store once before its app starts (the page cache of a running server)")
    parser.add_argument("--heavy-max", type=int, default=None,
                        help="run analyze and export only on stores of at most this many answers")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="goldennoise-store-"))
    results = []
    print("Store at scale: tiny-flux 64x64, batches of 4, pool of 256 seeds, 2 annotators, one campaign; "
          "the README's command on this machine" + ("; SQLite files read once before each start" if args.warm else ""))
    for size in [int(s) for s in args.sizes.split(",") if s]:
        folder = root / f"sqlite-{size}"
        if not (folder / "campaign.toml").exists():
            build(folder, size, None)
        heavy = size > 0 and not args.no_heavy and (args.heavy_max is None or size <= args.heavy_max)
        results.append(measure(folder / "campaign.toml", None, f"SQLite {size:,}", heavy=heavy, warmed=args.warm))
        print(line(results[-1]), flush=True)
    if args.postgresql:
        from tests.pg import postgresql

        with postgresql() as url:
            folder = root / f"postgresql-{args.postgresql}"
            build(folder, args.postgresql, url)
            results.append(measure(folder / "campaign.toml", url, f"PostgreSQL {args.postgresql:,}",
                                   heavy=not args.no_heavy))
            print(line(results[-1]), flush=True)
    empty = results[0]
    print("Ratios to the empty store (targets at 1M: start <= 10 s, RSS <= 1 GB, submit p50 <= 1.5x, analysis and "
          "export peak <= 2 GB):")
    for m in results[1:]:
        print(f"  {m['label']:>16}: start x{m['start_s'] / empty['start_s']:.2f}, RSS x{m['rss_mb'] / empty['rss_mb']:.2f}, "
              f"submit p50 x{m['submit_p50'] / empty['submit_p50']:.2f}, first screen "
              f"x{m['first_screen_ms'] / empty['first_screen_ms']:.2f}")


if __name__ == "__main__":
    main()
