"""The red-team room: an attack suite, a compromised model that obeys what it reads, and oracles.

`tether redteam` runs every attack case through the one run loop (origin `eval`, pristine data per
case) and decides from what was recorded whether the attack reached its goal.
"""
