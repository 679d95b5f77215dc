"""GoldenNoise app: parse arguments, build the demo, launch. Everything else is in goldennoise/."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

DEFAULT_PROMPTS = Path(__file__).parent / "prompts" / "sample.csv"


def default_outputs() -> str:
    """`GOLDENNOISE_OUTPUTS`, else a Space's persistent storage (/data) when present, else ./outputs."""
    if os.environ.get("GOLDENNOISE_OUTPUTS"):
        return os.environ["GOLDENNOISE_OUTPUTS"]
    if os.environ.get("SPACE_ID") and os.path.isdir("/data"):
        return "/data/goldennoise"
    return "outputs"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Label golden seeds for a text-to-image model.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (0.0.0.0 to serve the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="make a temporary public Gradio share link")
    parser.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                        help="require a login (repeatable); the user becomes the annotator")
    parser.add_argument("--auth-file", help="file of USER:PASSWORD lines")
    parser.add_argument("--model", default=None,
                        help="model preselected in Settings: a known name, hub id or folder "
                             "(default: FLUX.1-schnell with CUDA, else the offline tiny-flux)")
    parser.add_argument("--prompts", default=str(DEFAULT_PROMPTS), help="prompt file (CSV, JSON, JSONL, TXT)")
    parser.add_argument("--outputs", default=default_outputs(), help="folder for records.jsonl and images")
    parser.add_argument("--overlap", type=float, default=0.0,
                        help="fraction of prompts judged by two annotators, for agreement (default 0)")
    parser.add_argument("--max-queue", type=int, default=64, help="requests that may wait before 'queue full'")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the denoiser (regional where supported): slower start, faster batches")
    parser.add_argument("--offload", default="auto", choices=["auto", "gpu", "model_offload", "sequential_offload"],
                        help="where the weights live on a GPU machine (auto: by free memory)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from goldennoise import access, prompts, session, ui
    from goldennoise.assignment import Assigner
    from goldennoise.engine import Engine
    from goldennoise.records import RecordStore

    try:
        users = access.collect(args.auth, args.auth_file)
        prompt_set = prompts.load_prompts(args.prompts)
        assigner = Assigner(overlap=args.overlap)
    except ValueError as error:
        sys.exit(f"goldennoise: {error}")
    banner = None
    if args.share and not users:
        banner = access.SHARE_WITHOUT_AUTH
        logging.getLogger("goldennoise").warning("!" * 20 + " %s " + "!" * 20, banner)
    outputs = Path(args.outputs)
    engine = Engine(outputs, compile_denoiser=args.compile, placement=args.offload)
    demo = ui.build_demo(engine, RecordStore(outputs), prompt_set, session.default_settings(args.model),
                         assigner=assigner, banner=banner)
    ui.launch(demo, outputs, max_queue=args.max_queue, server_name=args.host, server_port=args.port,
              share=args.share, auth=users or None,
              auth_message="GoldenNoise: log in with the name and password you were given.")


if __name__ == "__main__":
    main()
