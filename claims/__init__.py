"""The paper's claims, one file per claim family (README, "The claims").

An installed refusal_checks carries these files as ``refusal_checks.suite.claims``:
``python -m refusal_checks claims`` runs them from any repository.
"""
