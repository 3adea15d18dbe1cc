"""Datasets (folder, Fashion-MNIST, synthetic), per-model views and a resumable loader."""
