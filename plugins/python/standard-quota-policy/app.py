# world: quota-policy
"""Nova's quota check in Python, as the Rust crate
plugins/quota/standard-quota-policy: for each resource in order, the request
is denied when the resource is limited (limit >= 0; -1 is unlimited), the
request asks for more of it and in_use + requested > limit. The denial names
the first such resource with Nova's message. Requests that give a resource
back pass even over a lowered limit."""

import wit_world

import novum_plugin


class WitWorld(novum_plugin.QuotaPolicy, wit_world.WitWorld):
    NAME = "py-standard-quota-policy"
    DESCRIPTION = "deny requests that would exceed a quota limit (Python)"

    def check(self, config, request):
        for usage in request.resources:
            if usage.limit >= 0 and usage.requested > 0 and usage.in_use + usage.requested > usage.limit:
                return (
                    usage.resource,
                    f"Quota exceeded for {usage.resource}: Requested {usage.requested}, "
                    f"but already used {usage.in_use} of {usage.limit} {usage.resource}",
                )
        return None
