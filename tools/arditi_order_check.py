"""Do the single-direction claims come out the same with Arditi's search in filter order?

Judges the calibration's behaviour worlds (refusal_checks/calibration/behaviour.py) twice,
with ``--refusal-selection-order full`` and ``filter``, through the same measurement code as
calibration/run.py, and compares the outcome of every Arditi claim each scenario judges.
Exits 1 when any outcome differs. Estimates may differ only in the no-direction verdicts of
bypass and KL, which read the computed candidates (docs/arditi.md#filter-order).

    nice -n 19 .venv/bin/python tools/arditi_order_check.py --worlds 50
"""

from __future__ import annotations

import argparse
import sys
import time

from refusal_checks.calibration.behaviour import BEHAVIOUR_SCENARIOS
from refusal_checks.calibration.measurements import behaviour_verdicts
from refusal_checks.calibration.worlds import PlantedBackend, collection
from refusal_checks.measure.arditi import ARDITI_CLAIMS

SCENARIOS = ("one-direction", "one-direction-weak", "planted-site", "no-steerable-direction",
             "no-linear-direction", "kl-filter-fails", "half-kept", "partial-ablation",
             "no-ablation")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=50, help="seeds 1..N per scenario")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    same, differ, seconds = 0, [], {"full": 0.0, "filter": 0.0}
    for name in args.scenarios.split(","):
        claims = [c for c in BEHAVIOUR_SCENARIOS[name].claims() if c in ARDITI_CLAIMS]
        for seed in range(1, args.worlds + 1) if claims else ():
            design = BEHAVIOUR_SCENARIOS[name].design.with_seed(seed)
            outcomes = {}
            for order in ("full", "filter"):
                started = time.perf_counter()
                verdicts = behaviour_verdicts(PlantedBackend(design), collection(design),
                                              claims, selection_order=order)
                seconds[order] += time.perf_counter() - started
                outcomes[order] = {c: v.outcome.value for c, v in verdicts.items()}
            for claim in claims:
                if outcomes["full"][claim] == outcomes["filter"][claim]:
                    same += 1
                else:
                    differ.append(f"{name} seed {seed} {claim}: full {outcomes['full'][claim]}"
                                  f", filter {outcomes['filter'][claim]}")
    print(f"Arditi claims' outcomes identical in {same} of {same + len(differ)} verdicts "
          f"({args.worlds} worlds per scenario); seconds: full {seconds['full']:.1f}, "
          f"filter {seconds['filter']:.1f}")
    print("\n".join(differ))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
