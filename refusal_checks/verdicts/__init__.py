"""One module per claim family: its statistic and its decision.
"""
