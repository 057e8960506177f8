"""The telephony plugin: hook specifications (the host contract) and their implementations.

The marker's project name must equal the host's (`telephony`): pluggy silently ignores
implementations registered under any other name.
"""
import pluggy

PROJECT_NAME = "telephony"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
