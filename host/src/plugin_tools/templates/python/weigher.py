# world: weigher
"""__NAME__: a novum scheduler weigher in Python. Prefers hosts running
fewer instances (raw weight: minus the host's instance count); the
controller normalizes the weights and applies the multiplier."""

import wit_world
from wit_world.imports import types

import novum_plugin


class WitWorld(novum_plugin.Weigher, wit_world.WitWorld):
    NAME = "__NAME__"
    DESCRIPTION = "fewer instances on the host (more is worse)"
    NEEDS = [types.Column.NUM_INSTANCES]

    def weights(self, hosts):
        # One finite raw weight per host.
        return [-count for count in hosts.num_instances]
