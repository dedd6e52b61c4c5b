"""The nnsight adapter: the only place that drives torch, transformers and nnsight for real models.
"""
