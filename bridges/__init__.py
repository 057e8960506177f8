"""Hosts for real phone systems. Each loads the plugin the way DESIGN §2 says a host does
(pluggy, project and entry-point group ``telephony``) and speaks its phone system's language:
``bridges.kamailio`` (an app_python3 handler and a kamailio.cfg template) and ``bridges.http``
(the lookup service behind ``sfcti serve`` for Asterisk, FreeSWITCH and FreePBX)."""
