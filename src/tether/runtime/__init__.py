"""The run loop, budgets, approvals and the service that claims and drives runs."""
