# world: filter
"""__NAME__: a novum scheduler filter in Python. Passes a host when it keeps
`headroom_mb` (configuration, default 1024) of RAM free after the instance
lands."""

import wit_world
from wit_world.imports import types

import novum_plugin


class WitWorld(novum_plugin.Filter, wit_world.WitWorld):
    NAME = "__NAME__"
    DESCRIPTION = "keeps RAM headroom on every host"
    # The host columns this filter reads: only these cross the boundary.
    NEEDS = [types.Column.MEMORY]

    def prepare(self, config, request):
        self.headroom = config.int("headroom_mb", 1024)

    def verdicts(self, hosts):
        # One entry per host: None passes it, a string rejects it.
        wanted = self.request.flavor.memory_mb
        headroom = self.headroom
        return [
            None
            if free - wanted >= headroom
            else f"only {free - wanted} MB would be left, {headroom} MB headroom wanted"
            for free in hosts.memory_free_mb
        ]
