"""Reproducible PANORAMA pipeline: domain logic behind the Snakemake workflow."""

__version__ = "0.1.0"
