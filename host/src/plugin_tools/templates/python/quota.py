# world: quota-policy
"""__NAME__: a novum quota policy in Python. Denies a server whose flavor
has more than `max_vcpus_per_server` (configuration, default 8) vCPUs."""

import wit_world

import novum_plugin


class WitWorld(novum_plugin.QuotaPolicy, wit_world.WitWorld):
    NAME = "__NAME__"
    DESCRIPTION = "at most max_vcpus_per_server vCPUs per server"

    def check(self, config, request):
        # None allows; (resource, message) denies with that 403 message.
        limit = config.int("max_vcpus_per_server", 8)
        flavor = request.flavor
        if flavor is not None and flavor.vcpus > limit:
            return ("cores", f"Flavor {flavor.name} has {flavor.vcpus} vCPUs, more than {limit} per server")
        return None
