"""Prompt sets: the types, the bundled sets and their strata.
"""
