# world: weigher
"""RAMWeigher in Python: the host's free RAM in MB, floored at 0 (Nova's
`minval = 0`). The same weights as the Rust crate plugins/weighers/ram."""

import wit_world
from wit_world.imports import types

import novum_plugin


class WitWorld(novum_plugin.Weigher, wit_world.WitWorld):
    NAME = "py-ram-weigher"
    DESCRIPTION = "free RAM in MB (more is preferred) (Python)"
    NEEDS = [types.Column.MEMORY]

    def weights(self, hosts):
        return [max(free, 0) for free in hosts.memory_free_mb]
