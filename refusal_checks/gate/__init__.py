"""The release gate: rules, policy, samples and its report.
"""
