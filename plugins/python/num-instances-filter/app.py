# world: filter
"""NumInstancesFilter in Python: passes hosts running fewer than
`max_instances_per_host` instances (configuration key of that name, default
50). The same semantics and reasons as the Rust crate
plugins/filters/num-instances, so their verdicts can be compared."""

import wit_world
from wit_world.imports import types

import novum_plugin


class WitWorld(novum_plugin.Filter, wit_world.WitWorld):
    NAME = "py-num-instances-filter"
    DESCRIPTION = "fewer than max_instances_per_host instances on the host (Python)"
    NEEDS = [types.Column.NUM_INSTANCES]

    def prepare(self, config, request):
        self.limit = config.int("max_instances_per_host", 50)

    def verdicts(self, hosts):
        limit = self.limit
        reason = f"host has too many instances (max_instances_per_host {limit})"
        return [None if count < limit else reason for count in hosts.num_instances]
