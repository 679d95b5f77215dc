"""The `goldennoise` command: app, generate, analyze, export, push, verify, migrate, simulate, train, schema.

Each subcommand parses its arguments here and calls the library; nothing runs at
import. `goldennoise <command> --help` lists every option, its choices and the
environment variables it reads.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

ENVIRONMENT = """environment variables:
  GOLDENNOISE_OUTPUTS   default --outputs (else /data/goldennoise on a Space with storage, else ./outputs)
  GOLDENNOISE_STORE     default --store: postgresql://user:password@host/database (else SQLite in the outputs folder)
  GOLDENNOISE_AUTH      logins, "user:password[,user2:password2:admin]" (added to --auth)
  GOLDENNOISE_ADMINS    comma-separated users who administer (added to --admin)
  GOLDENNOISE_CACHE     where the offline tiny models (random weights) are built (default ~/.cache/goldennoise)
  HF_TOKEN              a Hugging Face token, for gated or private models and for push
  HF_HOME               the Hugging Face cache (on a Space with storage: /data/.huggingface)
  HF_HUB_OFFLINE        1: only models already in the cache load
  GRADIO_SERVER_NAME, GRADIO_SERVER_PORT   default --host and --port
  SPACES_ZERO_GPU       set by Hugging Face on ZeroGPU Spaces: generation runs inside spaces.GPU"""
DEFAULT_PROMPTS = Path(__file__).resolve().parent.parent / "prompts" / "sample.csv"
DIGITS_PROMPTS = Path(__file__).resolve().parent.parent / "prompts" / "digits.txt"
DIGITS_GUIDELINES = DIGITS_PROMPTS.with_name("digits-guidelines.md")


def default_outputs() -> str:
    if os.environ.get("GOLDENNOISE_OUTPUTS"):
        return os.environ["GOLDENNOISE_OUTPUTS"]
    if os.environ.get("SPACE_ID") and os.path.isdir("/data"):
        return "/data/goldennoise"
    return "outputs"


def _parser(name: str, description: str, sub) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=description, description=description, epilog=ENVIRONMENT,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_campaign_options(p: argparse.ArgumentParser) -> None:
    """The campaign's flags, derived from its one definition (goldennoise.store.campaign.SETTINGS)."""
    from goldennoise.store.campaign import SETTINGS

    g = p.add_argument_group("campaign (a file, or built from these flags)")
    g.add_argument("--campaign", metavar="FILE", help="campaign TOML file; the flags below are then not allowed")
    for name, meta in SETTINGS.items():
        flag, rule = meta["flag"], meta["rule"]
        if flag is None:
            continue
        text = f"{meta['help']} [{meta['key']}]"
        if rule.kind == "names":
            g.add_argument(flag, dest=name, default=None, metavar="NAME,NAME", help=text,
                           type=lambda text: tuple(v.strip() for v in text.split(",") if v.strip()))
        elif rule.kind == "bool":
            g.add_argument(flag, dest=name, action="store_const", const=not meta["invert"], default=None, help=text)
        elif name == "guidelines":
            g.add_argument(flag, dest=name, metavar="FILE", default=None, help=text.replace("(Markdown)",
                                                                                       "(a Markdown file)"))
        else:
            kind = {"int": int, "float": float}.get(rule.kind, str)
            g.add_argument(flag, dest=name, type=kind, default=None, choices=rule.choices or None, help=text)


def add_store_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, metavar="URL",
                   help="where records live: empty for SQLite in the outputs folder (default), or "
                        "postgresql://user:password@host/database for several app replicas ($GOLDENNOISE_STORE)")


def campaign_from_args(args) -> "object":
    """The campaign of a --campaign file, or one built from the flags (refusing both at once)."""
    from dataclasses import replace

    from goldennoise.errors import CampaignError
    from goldennoise.generation import models
    from goldennoise.store import campaign as campaigns

    flags = {k: getattr(args, k) for k in campaigns.SETTINGS if getattr(args, k, None) is not None}
    if args.campaign:
        if flags:
            shown = ", ".join(campaigns.SETTINGS[k]["flag"] for k in flags)
            raise CampaignError(f"--campaign {Path(args.campaign).name}: the campaign file fixes the data; "
                                f"drop {shown} or edit the file.")
        return campaigns.load(args.campaign)
    if "guidelines" in flags:
        flags["guidelines"] = campaigns.read_guidelines(flags["guidelines"])
    flags.setdefault("model", models.default_model_name())
    flags.setdefault("prompts", str(default_prompts(flags["model"])))
    if flags["model"] == "digits" and "guidelines" not in flags and DIGITS_GUIDELINES.is_file():
        flags["guidelines"] = DIGITS_GUIDELINES.read_text(encoding="utf-8")
    return replace(campaigns.Campaign(), **flags).check()


def default_prompts(model: str) -> Path:
    """The prompt file a campaign built from flags uses: the ten digits for the digits model, else the sample."""
    return DIGITS_PROMPTS if model == "digits" and DIGITS_PROMPTS.is_file() else DEFAULT_PROMPTS


def cmd_app(args) -> int:
    if os.environ.get("SPACE_ID") and os.path.isdir("/data") and not os.environ.get("HF_HOME"):
        os.environ["HF_HOME"] = "/data/.huggingface"  # models persist across restarts with the Space's storage
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests, not news
    quiet_torchvision()
    from goldennoise.annotation import access
    from goldennoise.annotation.service import Service
    from goldennoise.errors import UserError

    log = logging.getLogger("goldennoise")
    try:
        campaign = campaign_from_args(args)
        who = access.collect(args.auth, args.auth_file, args.admin, host=args.host, share=args.share)
        service = Service(args.outputs, args.store, who, load_options={"compile_denoiser": args.compile,
                                                                        "placement": args.offload},
                          prefetch=False if args.no_prefetch else None, lease_seconds=args.lease_seconds,
                          max_batch_seconds=args.max_batch_seconds or None)
        if args.lease_seconds < 5:
            raise UserError("--lease-seconds: at least 5 (browser tabs renew their holds every 4 s).", "lease_seconds")
        log.info("records: %s (outputs folder %s)", service.store.describe(), Path(args.outputs).resolve())
        # In the main thread (ZeroGPU allows CUDA set-up only here), with the hub's download bars shown.
        service.start(campaign, progress=lambda share, text: log.info(text))
    except UserError as error:
        sys.exit(f"goldennoise app: {error}")
    from goldennoise import ui

    banner = who.warning()
    if os.environ.get("SPACE_ID") and not os.path.isdir("/data"):
        banner = (banner or "") + " This Space has no persistent storage: records are lost when it restarts."
    if banner:
        log.warning("!" * 10 + " %s " + "!" * 10, banner)
    for warning in service.runtime.warnings:
        log.warning(warning)
    if not args.share:
        log.info("to label from another machine: goldennoise app --share --auth user:password (a temporary public "
                 "link), or --host 0.0.0.0 with --auth on your network")
    demo = ui.build_demo(service, banner)
    log.info("GoldenNoise on http://%s:%d/ (records: %s; outputs folder %s)",
             "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host, args.port, service.store.describe(),
             service.outputs.resolve())
    ui.launch(demo, service.outputs, who, max_queue=args.max_queue, server_name=args.host, server_port=args.port,
              share=args.share, quiet=not args.share,  # Gradio's own lines suggest share=True in launch(): not ours
              auth_message="GoldenNoise: log in with the name and password you were given.")
    return 0


def quiet_torchvision() -> None:
    """transformers says at every start that its CLIP image processor falls back to PIL without torchvision; that
    is expected here (torchvision is not installed on purpose), so the line is dropped."""
    class Drop(logging.Filter):
        def filter(self, record) -> bool:
            return "requires torchvision" not in record.getMessage()

    from transformers.utils import logging as transformers_logging  # small: the library's logging set-up only

    transformers_logging.get_logger()  # makes the library's own handler, where its records are written
    drop = Drop()
    for handler in logging.getLogger("transformers").handlers:  # records of every transformers module pass here
        handler.addFilter(drop)
    for name in ("transformers", "transformers.utils.import_utils", "transformers.image_processing_utils"):
        logging.getLogger(name).addFilter(drop)


def cmd_generate(args) -> int:
    from goldennoise import pregenerate
    from goldennoise.errors import UserError

    try:
        return pregenerate.main(campaign_from_args(args), args.outputs, limit=args.limit,
                                allow_new_version=args.allow_new_version, store=args.store)
    except UserError as error:
        print(f"goldennoise generate: {error}", file=sys.stderr)
        return 2


def cmd_analyze(args) -> int:
    from goldennoise.errors import UserError
    from goldennoise.research import analysis

    try:
        result = analysis.run(args.outputs, campaign=args.campaign_id, pool=args.pool,
                              with_selector=not args.no_selector, umap=args.umap, out=args.out, store=args.store)
    except UserError as error:
        print(f"goldennoise analyze: {error}", file=sys.stderr)
        return 2
    print("\n".join(result["summary"]))
    print(f"report: {result['report']}")
    return 0


def cmd_export(args) -> int:
    from goldennoise.errors import UserError
    from goldennoise.research import export

    try:
        done = export.export(args.outputs, args.dest or Path(args.outputs) / "exports", args.formats.split(","),
                             campaign=args.campaign_id, pool=args.pool, store=args.store)
    except UserError as error:
        print(f"goldennoise export: {error}", file=sys.stderr)
        return 2
    for name, path in done["written"].items():
        print(f"{name}: {path}")
    if "hub" in done["written"]:
        for group in done["groups"]:
            print(f'load it: datasets.load_dataset("{done["written"]["hub"]}", "samples-{group}")')
    for warning in done["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if done["excluded"]:
        print(f"{len(done['excluded'])} record(s) left out (noise mismatch); run `goldennoise verify`", file=sys.stderr)
    return 0


def cmd_push(args) -> int:
    from goldennoise.errors import UserError
    from goldennoise.research import push

    try:
        return push.push(args.outputs, args.repo_id, private=args.private, dry_run=args.dry_run,
                         campaign=args.campaign_id, pool=args.pool, store=args.store)
    except UserError as error:
        print(f"goldennoise push: {error}", file=sys.stderr)
        return 2


def cmd_verify(args) -> int:
    from goldennoise.research import verify

    return verify.main(args.outputs, store=args.store)


def cmd_migrate(args) -> int:
    """Import a records.jsonl (0.1/0.2) into the store, once; print what was imported and skipped."""
    from goldennoise.errors import UserError
    from goldennoise.store.records import LEGACY_FILE, RecordStore

    source = Path(args.file) if args.file else Path(args.outputs) / LEGACY_FILE
    if not source.is_file():
        print(f"goldennoise migrate: no {source.name} to import", file=sys.stderr)
        return 2
    try:
        store = RecordStore(args.outputs, args.store, import_legacy=False)
        result = store.import_jsonl(source)
    except UserError as error:
        print(f"goldennoise migrate: {error}", file=sys.stderr)
        return 2
    if result is None:
        print(f"{source.name}: imported before; nothing to do ({store.count()} records in {store.describe()})")
        return 0
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{source.name}: {result['imported']} records imported, {result['skipped']} lines skipped, into "
          f"{store.describe()}")
    return 0


def cmd_train(args) -> int:
    """A noise-prompt network from a campaign's re-denoised candidates, with its held-out card."""
    from goldennoise.errors import UserError
    from goldennoise.research import train

    try:
        if args.kind == "verifier":
            card = train.train_verifier(args.outputs, args.out, args.campaign_id, args.labels, args.epochs,
                                        store=args.store)
        else:
            card = train.train(args.outputs, args.out, args.campaign_id, args.labels, args.epochs, store=args.store)
    except UserError as error:
        print(f"goldennoise train: {error}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") != "0":  # under accelerate launch / torchrun the first process reports
        return 0
    held = card.get("held_out")
    if args.kind == "verifier":
        print(f"learned verifier written: {args.out} (sha256 {card['sha256'][:12]}…); {card['training_images']} of "
              f"{card['images']} judged images ({args.labels}), {card['seconds']} s")
        if held:
            print(f"held out ({held['images']} images, {held['prompts']} prompts never seen): within-judgement AUC "
                  f"{held['auc']:.3f} (CLIP score: {held['clip_auc']:.3f})")
        print(f"use it: [scoring] verifiers = [\"learned\"], learned_checkpoint = \"{args.out}\"; pre-filter with "
              "prefilter.method = \"verifier:learned\"")
        return 0
    print(f"noise model written: {args.out} (sha256 {card['sha256'][:12]}…); {card['pairs']['training']} training "
          f"pairs ({args.labels}) of {card['pairs']['judged']} judged, {card['seconds']} s")
    if held:
        print(f"held out ({held['pairs']} pairs, {held['prompts']} prompts and their seeds never seen): error "
              f"{held['network_error']:.5f} vs the identity's {held['identity_error']:.5f}; predicted change's "
              f"cosine with the true one {held['change_cosine']:.3f}")
    print(f"serve it: [noise] source = \"model\", checkpoint = \"{args.out}\" (or --noise-source model "
          f"--noise-checkpoint {args.out})")
    return 0


def cmd_simulate(args) -> int:
    """A digits campaign answered by simulated annotators; the truth beside what the analysis found."""
    from goldennoise import simulate
    from goldennoise.errors import UserError

    try:
        sim = simulate.simulate(args.outputs, annotators=args.annotators, error=args.error,
                                disagreement=args.disagreement, skip_rate=args.skip_rate, speed_ms=args.speed_ms,
                                repeats=args.repeats, seed_strategy=args.seed_strategy, pool_size=args.pool_size,
                                batch_size=args.batch_size, overlap=args.overlap, guidance=args.guidance,
                                steps=args.steps, judge=args.judge, seed=args.seed, store=args.store,
                                verifiers=args.verifiers, noise_source=args.noise_source,
                                noise_share=args.noise_share, noise_checkpoint=args.noise_checkpoint)
        found = {} if args.no_analysis else simulate.analyse(Path(args.outputs), sim.campaign, args.store)
        pool = simulate.pool_truth(0, args.pool_size, args.guidance, args.steps) \
            if args.pool_truth and args.seed_strategy == "pool" else None
    except UserError as error:
        print(f"goldennoise simulate: {error}", file=sys.stderr)
        return 2
    print("\n".join(simulate.report(sim, found, pool)))
    if found:
        print(f"report: {found['report']}")
    return 0


def cmd_schema(args) -> int:
    import json

    from goldennoise.store.schema import json_schema

    print(json.dumps(json_schema(), indent=1, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="goldennoise", description="Collect golden noise: the seeds that make a "
                                     "text-to-image model produce its best images.", epilog=ENVIRONMENT,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    outputs = dict(default=default_outputs(), help="folder of the records database, images and campaigns (default "
                                                    "$GOLDENNOISE_OUTPUTS or ./outputs)")

    app = _parser("app", "Serve the labelling app (Workbench, Pairwise, History, Analysis).", sub)
    add_campaign_options(app)
    app.add_argument("--outputs", **outputs)
    add_store_option(app)
    app.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                     help="address to listen on (0.0.0.0: the whole network; then use logins)")
    app.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    app.add_argument("--share", action="store_true", help="a temporary public Gradio link (use with --auth)")
    app.add_argument("--auth", action="append", metavar="USER:PASSWORD[:admin]", help="a login (repeatable)")
    app.add_argument("--auth-file", metavar="FILE", help="file of USER:PASSWORD[:admin] lines")
    app.add_argument("--admin", action="append", metavar="USER", help="a logged-in user who administers (repeatable)")
    app.add_argument("--max-queue", type=int, default=64, help="requests that may wait before 'queue full'")
    app.add_argument("--compile", action="store_true", help="torch.compile the denoiser (slower start, faster batches)")
    app.add_argument("--offload", default="auto", choices=["auto", "gpu", "model_offload", "sequential_offload"],
                     help="where the weights live on a GPU (auto: by free memory)")
    app.add_argument("--no-prefetch", action="store_true", help="do not make the next batch ahead of time")
    app.add_argument("--max-batch-seconds", type=float, default=600.0, help="refuse a batch the measured speed says "
                     "would take longer (campaigns heavier than 16 megapixel-steps a batch are timed at load; 0: no "
                     "limit; default 600)")
    app.add_argument("--lease-seconds", type=float, default=120.0, help="how long a prompt stays held for an API "
                     "client that stops without a word (browser tabs renew every 4 s; default 120)")
    app.set_defaults(func=cmd_app)

    gen = _parser("generate", "Make a campaign's batches ahead of time, on every process of `accelerate launch` or "
                  "`torchrun` (resumable: only missing batches are made).", sub)
    add_campaign_options(gen)
    gen.add_argument("--outputs", **outputs)
    add_store_option(gen)
    gen.add_argument("--limit", type=int, default=None, help="stop after this many prompts (per process)")
    gen.add_argument("--allow-new-version", action="store_true",
                     help="go on although batches exist for an earlier version of this campaign (a new campaign id)")
    gen.set_defaults(func=cmd_generate)

    for name, description, func in (("analyze", "Write the analysis report of an outputs folder.", cmd_analyze),
                                    ("export", "Export the live answers for datasets, pandas and noise training.",
                                     cmd_export),
                                    ("push", "Push the exported dataset (with its card) to the Hugging Face hub.",
                                     cmd_push)):
        p = _parser(name, description, sub)
        p.add_argument("outputs", help="the outputs folder (its records, images, campaigns)")
        if name == "export":
            p.add_argument("dest", nargs="?", help="where to write (default OUTPUTS/exports)")
            p.add_argument("--formats", default="hub,table,npnet,npz",
                           help="comma-separated: hub (HF dataset with card), table (parquet/csv), npnet (NPNet "
                                "preference pairs), npz (classification arrays), jsonl (every record as its JSON "
                                "line: the journal)")
        if name == "push":
            p.add_argument("repo_id", help="the dataset repository, owner/name")
            p.add_argument("--private", action="store_true", help="create the repository private")
            p.add_argument("--dry-run", action="store_true", help="list exactly what would be uploaded, upload nothing")
        if name == "analyze":
            p.add_argument("--out", default=None, help="where to write the main page (default: OUTPUTS/analysis/<campaign>/"
                                                             "<configuration>/report.html for one group, else "
                                                             "OUTPUTS/analysis/index.html linking each group's report)")
            p.add_argument("--no-selector", action="store_true", help="skip the seed selector")
            p.add_argument("--umap", action="store_true", help="also draw UMAP (needs goldennoise[umap])")
        add_store_option(p)
        p.add_argument("--campaign-id", default=None, help="one campaign (default: each campaign separately)")
        p.add_argument("--pool", action="store_true", help="pool campaigns and generation configurations (not "
                       "recommended: different models' noises are not comparable)")
        p.set_defaults(func=func)

    trainer = _parser("train", "Train a noise-prompt network (NPNet style) on a campaign's re-denoised candidates "
                      "that people marked golden, and report it on prompts and seeds it never saw.", sub)
    trainer.add_argument("outputs")
    trainer.add_argument("--out", required=True, help="the checkpoint to write (.safetensors)")
    trainer.add_argument("--campaign-id", default=None, help="the campaign (default: the only one with pairs)")
    trainer.add_argument("--kind", choices=("noise", "verifier"), default="noise",
                         help="noise: the noise-prompt network (default); verifier: a head on CLIP embeddings")
    trainer.add_argument("--labels", choices=("golden", "all", "shuffled"), default="golden",
                         help="golden: the pairs people marked golden (default); all; shuffled: as many, at random")
    trainer.add_argument("--epochs", type=int, default=300)
    add_store_option(trainer)
    trainer.set_defaults(func=cmd_train)
    verify = _parser("verify", "Re-make every recorded noise from its seed and check it against its record.", sub)
    verify.add_argument("outputs")
    add_store_option(verify)
    verify.set_defaults(func=cmd_verify)
    migrate = _parser("migrate", "Import a records.jsonl of GoldenNoise 0.1/0.2 into the store (once; the app also "
                      "does it at start).", sub)
    migrate.add_argument("outputs")
    migrate.add_argument("--file", default=None, help="the JSONL file (default OUTPUTS/records.jsonl)")
    add_store_option(migrate)
    migrate.set_defaults(func=cmd_migrate)
    sim = _parser("simulate", "Run a campaign on the offline digits model, answered by simulated annotators judged by "
                  "an independent classifier (a known truth), and print the truth beside what the analysis found.",
                  sub)
    sim.add_argument("--outputs", **outputs)
    add_store_option(sim)
    sim.add_argument("--annotators", type=int, default=2, help="simulated annotators (default 2)")
    sim.add_argument("--error", type=float, default=0.05, help="chance each label is flipped (default 0.05)")
    sim.add_argument("--disagreement", type=float, default=0.0,
                     help="spread of the annotators' own thresholds around the judge's 0.8 (default 0)")
    sim.add_argument("--skip-rate", type=float, default=0.0, help="chance a prompt is skipped (default 0)")
    sim.add_argument("--speed-ms", type=int, default=1500, help="viewing time each answer reports (default 1500)")
    sim.add_argument("--repeats", type=int, default=10, help="ways each digit is asked for: 10 x this prompts "
                     "(default 10)")
    sim.add_argument("--seed-strategy", choices=("pool", "random", "sequential"), default="pool")
    sim.add_argument("--pool-size", type=int, default=40)
    sim.add_argument("--batch-size", type=int, default=4)
    sim.add_argument("--overlap", type=float, default=0.3)
    sim.add_argument("--guidance", type=float, default=0.75, help="the difficulty knob (default 0.75: ~80%% pass)")
    sim.add_argument("--steps", type=int, default=10, help="denoising steps (default 10: the same seed ranking as 20)")
    sim.add_argument("--judge", choices=("svc", "coin"), default="svc", help="svc: the classifier; coin: fair coin "
                     "flips (a world with nothing to find)")
    sim.add_argument("--seed", type=int, default=0, help="the annotators' randomness")
    sim.add_argument("--verifiers", default=("digits",), metavar="NAME,NAME",
                     type=lambda text: tuple(v.strip() for v in text.split(",") if v.strip()),
                     help="verifiers scoring every image (default digits: the sandbox's own; '' for none)")
    sim.add_argument("--noise-source", choices=("seed", "redenoise", "model"), default="seed",
                     help="redenoise: a share of each batch starts from NPNet's re-denoised noise; model: from a "
                     "trained noise model's (--noise-checkpoint) (default seed)")
    sim.add_argument("--noise-checkpoint", default=None, help="the noise model (goldennoise train)")
    sim.add_argument("--noise-share", type=float, default=0.5, help="that share (default 0.5)")
    sim.add_argument("--no-analysis", action="store_true", help="write the records only")
    sim.add_argument("--pool-truth", action="store_true", help="also judge every pool seed x every digit (slower)")
    sim.set_defaults(func=cmd_simulate)
    schema = _parser("schema", "Print the JSON Schema of a records.jsonl line.", sub)
    schema.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
