"""The HTTP API: authenticated, versioned under /v1, served by `tether serve` and `tether api`."""
