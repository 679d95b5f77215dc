"""python -m goldennoise.analysis OUTPUTS [--out FILE] [--no-selector] [--no-clip-embeddings]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from goldennoise.analysis import analyze, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write an HTML report of a GoldenNoise outputs folder.")
    parser.add_argument("outputs", type=Path)
    parser.add_argument("--out", type=Path, help="report file (default OUTPUTS/analysis/report.html)")
    parser.add_argument("--no-selector", action="store_true", help="skip training and evaluating the seed selector")
    parser.add_argument("--no-clip-embeddings", action="store_true")
    args = parser.parse_args(argv)
    try:
        analysis = analyze(args.outputs, with_selector=not args.no_selector,
                           clip_embeddings=not args.no_clip_embeddings)
    except ValueError as error:
        print(f"goldennoise.analysis: {error}", file=sys.stderr)
        return 2
    written = report.write(analysis, args.outputs, args.out)
    print(f"report: {written['report']}")
    if written["selector"]:
        print(f"seed selector: {written['selector']} (held-out AUC {analysis.selector.held_out_auc:.3f})")
    if analysis.selector_results is not None:
        print(analysis.selector_results.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
