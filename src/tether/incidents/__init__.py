"""Incidents: opened by people, firing alerts and automatic rollbacks; turned into tests afterwards.

`service` opens, annotates and closes them (and is the hook alerts and rollbacks call),
`timeline` assembles what happened from what is already recorded, `report` writes the postmortem
draft, and `cases` turns the linked runs into regression cases.
"""
