"""Losses shared by several recipes."""
