"""Evals: suites of cases, scorers, the runner, the release gate, cost estimates and readiness reviews."""
