"""Statistics on numpy arrays: intervals, paired tests, decision rules, reliability, geometry.

numpy only: no torch, no pytest; tested by feeding it numbers.
"""
