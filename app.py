"""GoldenNoise app: parse arguments, build the demo, launch. Everything else is in goldennoise/."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

DEFAULT_PROMPTS = Path(__file__).parent / "prompts" / "sample.csv"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Label golden seeds for a text-to-image model.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (0.0.0.0 to serve the network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="make a temporary public Gradio share link")
    parser.add_argument("--model", default=None,
                        help="model preselected in Settings: a known name, hub id or folder "
                             "(default: FLUX.1-schnell with CUDA, else the offline tiny-flux)")
    parser.add_argument("--prompts", default=str(DEFAULT_PROMPTS), help="prompt file (CSV, JSON, JSONL, TXT)")
    parser.add_argument("--outputs", default=os.environ.get("GOLDENNOISE_OUTPUTS", "outputs"),
                        help="folder for records.jsonl and images")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from goldennoise import prompts, session, ui
    from goldennoise.engine import Engine
    from goldennoise.records import RecordStore

    outputs = Path(args.outputs)
    prompt_set = prompts.load_prompts(args.prompts)
    demo = ui.build_demo(Engine(outputs), RecordStore(outputs), prompt_set, session.default_settings(args.model))
    ui.launch(demo, outputs, server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
