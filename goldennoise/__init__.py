"""GoldenNoise: collect the seeds (initial noises) that make a text-to-image model produce its best images."""

__version__ = "0.1.0"
