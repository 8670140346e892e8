"""What an agent is: the tool decorator, tether.toml, project snapshots and their diffs."""
