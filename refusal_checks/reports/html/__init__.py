"""The HTML report: page, parts and figures.
"""
