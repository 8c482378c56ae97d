"""Print the figures of a schemathesis run from its reports, for the CI log.

    python3 scripts/fuzz/summary.py REPORT_DIR MIN_REQUESTS

REPORT_DIR holds the `json` and `ndjson` reports of one `st run`. Prints the requests sent
(by phase), each check's outcomes, the statuses each operation answered, and the failures a
`filter_failure` hook dropped. Exits 1 when fewer than MIN_REQUESTS requests were sent, so a
configuration change cannot quietly shrink the run to nothing.
"""

from __future__ import annotations

import collections
import glob
import json
import sys


def only(pattern: str) -> str:
    found = glob.glob(pattern)
    if len(found) != 1:
        sys.exit(f"summary: expected one {pattern}, found {found}")
    return found[0]


def main() -> int:
    report_dir, min_requests = sys.argv[1], int(sys.argv[2])
    run = json.load(open(only(f"{report_dir}/*.json")))
    requests_by_phase: collections.Counter[str] = collections.Counter()
    checks: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    statuses: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    with open(only(f"{report_dir}/*.ndjson")) as events:
        for line in events:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished["recorder"]
            for interaction in recorder.get("interactions", {}).values():
                requests_by_phase[finished["phase"]] += 1
                response = interaction.get("response")
                status = response["status_code"] if response else 0
                statuses[recorder["label"]][status] += 1
            for results in recorder.get("checks", {}).values():
                for result in results:
                    checks[result["name"]][result["status"]] += 1

    total = sum(requests_by_phase.values())
    print(f"requests sent: {total} ({', '.join(f'{p} {n}' for p, n in requests_by_phase.items())})")
    try:
        with open(f"{report_dir}/../hook-logins") as logins:
            print(f"plus logins made by hooks.py for real tokens: {logins.read().strip()}")
    except FileNotFoundError:
        pass
    print(f"test cases: {run['test_cases']['generated']} generated, {run['test_cases']['with_failures']} with failures")
    print(f"seed: {run['seed']}; running time: {run['running_time']:.1f} s")
    print("checks (outcome: count):")
    for name in sorted(checks):
        outcomes = ", ".join(f"{outcome} {n}" for outcome, n in sorted(checks[name].items()))
        print(f"  {name:30} {outcomes}")
    print(f"failures dropped by filter_failure (contract-mandated 400s, hooks.py): {run.get('filtered', 0)}")
    print("statuses by operation:")
    for label in sorted(statuses):
        counts = " ".join(f"{status}x{n}" for status, n in sorted(statuses[label].items()))
        print(f"  {label:40} {counts}")
    if total < min_requests:
        print(f"summary: only {total} requests, fewer than the {min_requests} required", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
