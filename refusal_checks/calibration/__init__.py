"""Known-answer worlds: the claims' own measurement objects and verdicts, run where the answer is planted.
"""
