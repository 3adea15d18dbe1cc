"""compressor: train compact image encoders from self-supervised teachers, export and benchmark them."""

__version__ = "0.1.0"
