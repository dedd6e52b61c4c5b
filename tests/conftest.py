from hypothesis import settings

pytest_plugins = ["pytester"]

# Hypothesis's default 200 ms deadline per example is a timed assertion: on a loaded 2-core
# machine an ordinary example can take longer and fail with DeadlineExceeded although
# nothing is wrong. The project measures speed in benchmarks/, never in tests.
settings.register_profile("refusal_checks", deadline=None)
settings.load_profile("refusal_checks")
