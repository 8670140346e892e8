"""Operator controls: run-time switches (kill switches) that act on every process within a second.

`kinds` says what each control does and what it needs, `effect` folds the controls in force into
what one run may do right now, `service` sets and clears them for the CLI, the API and the
dashboard. The run loop applies them through `tether.runtime.controls`.
"""
