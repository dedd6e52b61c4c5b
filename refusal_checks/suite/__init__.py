"""The claims suite as part of the installed package.

``refusal_checks.suite.claims`` is this repository's ``claims/`` and
``refusal_checks.suite.fixtures`` its ``fixtures/`` (pyproject.toml maps the two folders
into the package, for an editable install and a wheel alike), so a team that installs
refusal_checks runs the paper's claims from its own repository with
``python -m refusal_checks claims`` (README, "Run the claims from your own repository").
"""
