"""refusal_checks: claims about how chat models refuse, as pytest checks.

The package is stacked in layers; every import, at module level or inside a function, goes
to the same layer or one below (tests/unit/test_layout.py enforces it). Bottom to top:
"""

__version__ = "0.1.0"

#: The layers, bottom to top: a module may import from its own layer and the ones before it.
#: ``errors`` is the one library module at the package root; ``__main__`` is the command line.
LAYERS: tuple[str, ...] = (
    "errors",       # the project's exception types
    "core",         # stdlib only: safe file writing, the cost ledger, protocol defaults
    "stats",        # numpy only: intervals, paired tests, decision rules, reliability, geometry
    "prompts",      # prompt sets: types, the bundled files, strata
    "cache",        # cache keys, the on-disk store, resumable chunks, reply identities
    "models",       # registry, loading, Backend protocol, interventions, scores, synthetic worlds
    "judges",       # reply judges, labels, agreement with people
    "measure",      # activations, replies, scores, selection, controls, staged probes
    "verdicts",     # one module per claim family: its statistic and its decision
    "calibration",  # known-answer worlds through the claims' own measure and verdict code
    "reports",      # summary, JSON schema, comparison, the HTML page
    "gate",         # release-gate rules and policy
    "plugin",       # pytest hooks: pytest and the stdlib at module level
    "suite",        # the installed claims suite and its runner
    "__main__",     # the command line
)
