"""Models behind one Backend protocol: the registry, loading, interventions as data, the cheap
score, planted worlds. ``models.nnsight`` is the adapter that drives real models.
"""
