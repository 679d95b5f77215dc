"""The `goldennoise` command: app, generate, analyze, export, push, verify, schema.

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
  GOLDENNOISE_AUTH      logins, "user:password[,user2:password2:admin]" (added to --auth)
  GOLDENNOISE_ADMINS    comma-separated users who administer (added to --admin)
  GOLDENNOISE_CACHE     where the offline tiny models are built (default ~/.cache/goldennoise)
  HF_TOKEN              a Hugging Face token, for gated or private models and for push
  HF_HOME               the Hugging Face cache (on a Space with storage: /data/.huggingface)
  HF_HUB_OFFLINE        1: only models already in the cache load
  GRADIO_SERVER_NAME, GRADIO_SERVER_PORT   default --host and --port
  SPACES_ZERO_GPU       set by Hugging Face on ZeroGPU Spaces: generation runs inside spaces.GPU"""
DEFAULT_PROMPTS = Path(__file__).resolve().parent.parent / "prompts" / "sample.csv"


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
    from goldennoise.generation import models, seeds

    g = p.add_argument_group("campaign (a file, or built from these flags)")
    g.add_argument("--campaign", metavar="FILE", help="campaign TOML file; the flags below are then not allowed")
    g.add_argument("--name", default=None, help="campaign name (default: goldennoise)")
    g.add_argument("--model", default=None, help=f"known name ({', '.join(models.KNOWN_MODELS)}), hub id or folder "
                   "(default: FLUX.1-schnell with CUDA, else tiny-flux)")
    g.add_argument("--revision", default=None, help="hub revision (commit) of the model")
    g.add_argument("--dtype", default=None, choices=models.DTYPES, help="weights and latents dtype (default auto: "
                   "bfloat16 on CUDA, float32 on CPU)")
    g.add_argument("--prompts", default=None, help=f"prompt file: CSV, JSON, JSONL or TXT (default {DEFAULT_PROMPTS.name})")
    g.add_argument("--steps", dest="num_inference_steps", type=int, default=None, help="num_inference_steps")
    g.add_argument("--guidance", dest="guidance_scale", type=float, default=None, help="guidance_scale")
    g.add_argument("--height", type=int, default=None)
    g.add_argument("--width", type=int, default=None)
    g.add_argument("--scheduler", default=None, help="scheduler class name (default: the model's)")
    g.add_argument("--batch-size", type=int, default=None, help="seeds shown per prompt (default 4)")
    g.add_argument("--seed-strategy", choices=seeds.STRATEGIES, default=None, help="default random")
    g.add_argument("--start-seed", type=int, default=None)
    g.add_argument("--pool-size", type=int, default=None, help="seeds in the pool (pool strategy)")
    g.add_argument("--candidates", type=int, default=None, help="make this many per prompt, show the best (pre-filter)")
    g.add_argument("--prefilter", choices=("clip", "selector"), default=None, help="how candidates are ranked")
    g.add_argument("--explore", type=int, default=None, help="shown slots filled at random from the rest (default 1)")
    g.add_argument("--overlap", type=float, default=None, help="fraction of prompts judged by two annotators")
    g.add_argument("--show-scores", action="store_true", help="show CLIP scores before the answer (default: blind)")
    g.add_argument("--min-view-ms", type=int, default=None, help="least time a batch is on screen before an answer "
                   "counts (default 400)")
    g.add_argument("--no-clip", action="store_true", help="do not compute CLIP scores")


def campaign_from_args(args) -> "object":
    """The campaign of a --campaign file, or one built from the flags (refusing both at once)."""
    from dataclasses import replace

    from goldennoise.errors import CampaignError
    from goldennoise.generation import models
    from goldennoise.store import campaign as campaigns

    flags = {k: getattr(args, k) for k in ("name", "model", "revision", "dtype", "prompts", "num_inference_steps",
                                          "guidance_scale", "height", "width", "scheduler", "batch_size",
                                          "seed_strategy", "start_seed", "pool_size", "candidates", "prefilter",
                                          "explore", "overlap", "min_view_ms") if getattr(args, k) is not None}
    if args.show_scores:
        flags["blind"] = False
    if args.no_clip:
        flags["clip"] = False
    if args.campaign:
        if flags:
            raise CampaignError(f"--campaign {Path(args.campaign).name}: the campaign file fixes the data; "
                                f"drop --{', --'.join(k.replace('_', '-') for k in flags)} or edit the file.")
        return campaigns.load(args.campaign)
    flags.setdefault("model", models.default_model_name())
    flags.setdefault("prompts", str(DEFAULT_PROMPTS))
    return replace(campaigns.Campaign(), **flags).check()


def cmd_app(args) -> int:
    if os.environ.get("SPACE_ID") and os.path.isdir("/data") and not os.environ.get("HF_HOME"):
        os.environ["HF_HOME"] = "/data/.huggingface"  # models persist across restarts with the Space's storage
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from goldennoise.annotation import access
    from goldennoise.annotation.engine import Engine
    from goldennoise.annotation.tabs import Tabs
    from goldennoise.errors import UserError

    try:
        campaign = campaign_from_args(args)
        who = access.collect(args.auth, args.auth_file, args.admin, host=args.host, share=args.share)
    except UserError as error:
        sys.exit(f"goldennoise app: {error}")
    engine = Engine(args.outputs, compile_denoiser=args.compile, placement=args.offload,
                    prefetch=False if args.no_prefetch else None)
    log = logging.getLogger("goldennoise")
    try:
        # In the main thread (ZeroGPU allows CUDA set-up only here), with the hub's download bars shown.
        engine.start(campaign, progress=lambda share, text: log.info(text))
    except UserError as error:
        sys.exit(f"goldennoise app: {error}")
    from goldennoise import ui

    banner = who.warning()
    if os.environ.get("SPACE_ID") and not os.path.isdir("/data"):
        banner = (banner or "") + " This Space has no persistent storage: records are lost when it restarts."
    if banner:
        logging.getLogger("goldennoise").warning("!" * 10 + " %s " + "!" * 10, banner)
    ctx = ui.Context(engine, Tabs(), who)
    demo = ui.build_demo(ctx, banner)
    ui.launch(demo, engine.outputs, who, max_queue=args.max_queue, server_name=args.host, server_port=args.port,
              share=args.share, auth_message="GoldenNoise: log in with the name and password you were given.")
    return 0


def cmd_generate(args) -> int:
    from goldennoise import pregenerate
    from goldennoise.errors import UserError

    try:
        return pregenerate.main(campaign_from_args(args), args.outputs, limit=args.limit,
                                allow_new_version=args.allow_new_version)
    except UserError as error:
        print(f"goldennoise generate: {error}", file=sys.stderr)
        return 2


def cmd_analyze(args) -> int:
    from goldennoise.errors import UserError
    from goldennoise.research import analysis

    try:
        result = analysis.run(args.outputs, campaign=args.campaign_id, pool=args.pool,
                              with_selector=not args.no_selector, umap=args.umap, out=args.out)
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
                             campaign=args.campaign_id, pool=args.pool)
    except UserError as error:
        print(f"goldennoise export: {error}", file=sys.stderr)
        return 2
    for name, path in done["written"].items():
        print(f"{name}: {path}")
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
                         campaign=args.campaign_id, pool=args.pool)
    except UserError as error:
        print(f"goldennoise push: {error}", file=sys.stderr)
        return 2


def cmd_verify(args) -> int:
    from goldennoise.research import verify

    return verify.main(args.outputs)


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
    outputs = dict(default=default_outputs(), help="folder of records.jsonl, images and campaigns (default "
                                                    "$GOLDENNOISE_OUTPUTS or ./outputs)")

    app = _parser("app", "Serve the labelling app (Workbench, Pairwise, History, Analysis).", sub)
    add_campaign_options(app)
    app.add_argument("--outputs", **outputs)
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
    app.set_defaults(func=cmd_app)

    gen = _parser("generate", "Make a campaign's batches ahead of time, on every process of `accelerate launch` or "
                  "`torchrun` (resumable: only missing batches are made).", sub)
    add_campaign_options(gen)
    gen.add_argument("--outputs", **outputs)
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
        p.add_argument("outputs", help="the outputs folder (records.jsonl, images, campaigns)")
        if name == "export":
            p.add_argument("dest", nargs="?", help="where to write (default OUTPUTS/exports)")
            p.add_argument("--formats", default="hub,table,npnet,npz",
                           help="comma-separated: hub (HF dataset with card), table (parquet/csv), npnet (NPNet "
                                "preference pairs), npz (classification arrays)")
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
        p.add_argument("--campaign-id", default=None, help="one campaign (default: each campaign separately)")
        p.add_argument("--pool", action="store_true", help="pool campaigns and generation configurations (not "
                       "recommended: different models' noises are not comparable)")
        p.set_defaults(func=func)

    verify = _parser("verify", "Re-make every recorded noise from its seed and check it against its record.", sub)
    verify.add_argument("outputs")
    verify.set_defaults(func=cmd_verify)
    schema = _parser("schema", "Print the JSON Schema of a records.jsonl line.", sub)
    schema.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
