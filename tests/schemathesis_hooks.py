"""schemathesis hooks for the schemathesis e2e test (SCHEMATHESIS_HOOKS).

Glance's image update takes a JSON patch in its own media type; its body is
JSON, so it is sent the way application/json is.
"""

import schemathesis

schemathesis.serializer.alias("application/openstack-images-v2.1-json-patch", "application/json")
