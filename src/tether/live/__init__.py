"""Live configuration: state that operators change while processes run (deployments, controls, flags).

One mechanism for all of it (see `config.py`), so "every node sees a change within a second" is
built, tested and measured once.
"""

from tether.live.config import LiveConfig, LiveValue

__all__ = ["LiveConfig", "LiveValue"]
