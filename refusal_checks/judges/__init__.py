"""Judges of replies (refused or not), their registry, labels and agreement with people.
"""
