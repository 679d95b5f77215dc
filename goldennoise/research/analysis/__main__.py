"""python -m goldennoise.research.analysis OUTPUTS [--campaign-id ID] [--pool] [--no-selector] [--umap] [--out FILE]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from goldennoise.errors import UserError
from goldennoise.research.analysis import run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m goldennoise.research.analysis",
        description="Write the analysis report of a GoldenNoise outputs folder: one report per (campaign, generation "
                    "configuration) under OUTPUTS/analysis/, an index when there are several.")
    parser.add_argument("outputs", type=Path, help="the outputs folder (its records, campaigns)")
    parser.add_argument("--campaign-id", default=None, help="analyse one campaign (default: each separately)")
    parser.add_argument("--pool", action="store_true",
                        help="pool campaigns and configurations (not recommended: noises are not comparable)")
    parser.add_argument("--no-selector", action="store_true", help="skip training and evaluating the seed selector")
    parser.add_argument("--umap", action="store_true", help="also draw UMAP (needs umap-learn; slow first run)")
    parser.add_argument("--out", type=Path, default=None, help="also write the main report (or index) to this file")
    args = parser.parse_args(argv)
    try:
        result = run(args.outputs, campaign=args.campaign_id, pool=args.pool, with_selector=not args.no_selector,
                     umap=args.umap, out=args.out)
    except UserError as error:
        print(f"goldennoise.research.analysis: {error}", file=sys.stderr)
        return 2
    print("\n".join(result["summary"]))
    print(f"report: {result['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
