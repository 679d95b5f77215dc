"""GoldenNoise app (also a Hugging Face Space's entry point): `goldennoise app` with these arguments."""

import sys

from goldennoise.cli import main

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))
