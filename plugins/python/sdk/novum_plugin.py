"""novum's plugin SDK for Python: the worlds of `novum:plugin@0.1.0`
(wit/since_v0.1.0) as base classes, for plugins built with componentize-py.

A plugin module (`app.py`) defines `WitWorld`, the class componentize-py
exports, from one of these bases and the generated world:

    import wit_world
    from wit_world.imports import types
    import novum_plugin

    class WitWorld(novum_plugin.Filter, wit_world.WitWorld):
        NAME = "my-filter"
        NEEDS = [types.Column.MEMORY]

        def prepare(self, config, request):
            self.headroom = config.int("headroom_mb", 1024)

        def verdicts(self, hosts):
            need = self.request.flavor.memory_mb + self.headroom
            return [None if free >= need else "not enough RAM"
                    for free in hosts.memory_free_mb]

The contract is the Rust SDK's (plugins/sdk): the request crosses once per
plugin (`begin`), the hosts cross by column (only the columns `begin`
answers are filled; the others are empty lists), rejection reasons are
interned into one list per call, and "every host passes" is the empty
outcome. Python plugins run in the same sandbox as Rust ones: no files, no
network, no environment; log with `log()`.
"""

from wit_world.imports import host, types
from componentize_py_types import Err

__all__ = ["Config", "Filter", "Weigher", "QuotaPolicy", "log", "now_ms", "strings"]


def log(level, message, **fields):
    """Structured log through the host (`level`: "trace" ... "error"),
    tagged by the controller with the plugin's name and the request id."""
    host.log(
        host.Level[level.upper()],
        str(message),
        [types.KeyValue(str(key), str(value)) for key, value in fields.items()],
    )


def now_ms():
    """Wall-clock milliseconds since the Unix epoch (the host's clock)."""
    return host.now_ms()


class Config:
    """The plugin's own configuration (`[plugins.<name>] config = {...}` in
    the controller's TOML): scalars as text, arrays and tables as JSON."""

    def __init__(self, pairs):
        self.values = {pair.key: pair.value for pair in pairs}

    @classmethod
    def load(cls):
        """The configuration the host hands this plugin."""
        return cls(host.config())

    def get(self, key, default=None):
        """The value of `key` as text, else `default`."""
        return self.values.get(key, default)

    def int(self, key, default):
        """`key` as an integer; `default` when absent or not an integer
        (as the Rust SDK's `parse_int`)."""
        try:
            return int(self.values[key].strip())
        except (KeyError, ValueError):
            return default

    def float(self, key, default):
        """`key` as a number; `default` when absent or not a number."""
        try:
            return float(self.values[key].strip())
        except (KeyError, ValueError):
            return default


def strings(hosts, column):
    """An interned string column (`names`, `availability_zones`, ...) as
    text, one entry per host."""
    table = hosts.strings
    return [table[index] for index in getattr(hosts, column)]


def _logged(call):
    """Runs `call`; an exception is logged through the host with its
    traceback (the guest's stderr goes nowhere) and raised again, which
    fails the call (the plugin's `on_error` then decides)."""
    try:
        return call()
    except Exception:
        import traceback

        log("error", "python plugin raised: " + traceback.format_exc())
        raise


#: The plugin object that began the current request. componentize-py makes
#: a new `WitWorld` for every exported call, so what `begin` prepares lives
#: here until `filter_hosts` / `weigh_hosts`, which the host calls next on
#: the same instance.
_session = None


class _Scheduler:
    """What filters and weighers share: describe, and a `begin` that keeps
    the request (and what `prepare` sets) for the call that follows, and
    answers the columns it needs."""

    NAME = "python-plugin"
    VERSION = "0.1.0"
    DESCRIPTION = ""
    #: Every column the plugin may read (`types.Column` members).
    NEEDS = []

    def describe(self):
        return types.PluginInfo(self.NAME, self.VERSION, self.DESCRIPTION, list(self.NEEDS))

    def begin(self, request):
        global _session

        def start():
            self.request = request
            self.config = Config.load()
            self.prepare(self.config, request)
            return self.needs(request)

        needs = _logged(start)
        _session = self
        return needs

    @staticmethod
    def _begun():
        if _session is None:
            raise RuntimeError("called before begin")
        return _session

    def prepare(self, config, request):
        """Called once per request before the hosts arrive: read the
        configuration and the request here."""

    def needs(self, request):
        """The columns this request reads (default: all of `NEEDS`)."""
        return list(self.NEEDS)


class Filter(_Scheduler):
    """A scheduler filter (world `filter`). Implement `verdicts(hosts)`:
    one entry per host, `None` to pass it or the rejection reason."""

    def verdicts(self, hosts):
        raise NotImplementedError

    def filter_hosts(self, hosts):
        plugin = self._begun()
        reasons = {}
        verdicts = []
        for reason in _logged(lambda: plugin.verdicts(hosts)):
            if reason is None:
                verdicts.append(0)
            else:
                verdicts.append(reasons.setdefault(reason, len(reasons) + 1))
        if not reasons:
            return types.FilterOutcome([], [])
        return types.FilterOutcome(verdicts, list(reasons))


class Weigher(_Scheduler):
    """A scheduler weigher (world `weigher`). Implement `weights(hosts)`:
    one raw, finite weight per host; the controller normalizes them and
    applies the multiplier."""

    def weights(self, hosts):
        raise NotImplementedError

    def weigh_hosts(self, hosts):
        plugin = self._begun()
        return [float(weight) for weight in _logged(lambda: plugin.weights(hosts))]


class QuotaPolicy:
    """A quota policy (world `quota-policy`). Implement
    `check(config, request)`: `None` allows the request, a
    `(resource, message)` pair denies it (the message is the 403's)."""

    NAME = "python-quota-policy"
    VERSION = "0.1.0"
    DESCRIPTION = ""

    def describe(self):
        return types.PluginInfo(self.NAME, self.VERSION, self.DESCRIPTION, [])

    def check(self, config, request):
        raise NotImplementedError

    def check_quota(self, request):
        denial = _logged(lambda: self.check(Config.load(), request))
        if denial is not None:
            resource, message = denial
            raise Err(types.QuotaDenial(resource, message))
