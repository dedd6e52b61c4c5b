"""Bottom layer: the standard library only (file writing, the cost ledger, protocol defaults).
"""
