"""Frozen-embedding evaluation: weighted kNN and a linear probe."""
