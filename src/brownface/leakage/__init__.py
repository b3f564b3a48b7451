"""Leakage: how close synthetic identities come to real people (the generator's training set)."""
