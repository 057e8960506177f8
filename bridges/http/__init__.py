"""The HTTP lookup service behind ``sfcti serve``: a host for phone systems that cannot load a
pluggy plugin (Asterisk's ``CURL()``, FreeSWITCH's ``mod_cidlookup``, FreePBX). It loads the
plugin through its entry point and calls the hooks with a ``plugin.call.Call``; the API is in
docs/http-lookup.md."""

from bridges.http.app import TokenError, create_app, is_loopback, resolve_token

__all__ = ["TokenError", "create_app", "is_loopback", "resolve_token"]
