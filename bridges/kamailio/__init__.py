"""The Kamailio bridge: an app_python3 handler (``handler``) that loads the plugin like any host,
and the kamailio.cfg it runs in, rendered by ``config`` (``sfcti kamailio-config``)."""
