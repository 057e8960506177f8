"""What every host does with the plugin: load it through its entry point, and hand it calls."""

from __future__ import annotations


def load_host():
    """A pluggy PluginManager set up the way a host does it: specs, entry points, check."""
    import pluggy

    import plugin.hookspecs

    pm = pluggy.PluginManager("telephony")
    pm.add_hookspecs(plugin.hookspecs)
    pm.load_setuptools_entrypoints("telephony")
    pm.check_pending()
    return pm
