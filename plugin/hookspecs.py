"""Hook specifications: the reference copy of the host phone system's contract (DESIGN §2).

A host loads its plugins like this, and nothing else is needed to find this one::

    pm = pluggy.PluginManager("telephony")
    pm.add_hookspecs(plugin.hookspecs)
    pm.load_setuptools_entrypoints("telephony")
    pm.check_pending()          # a misspelt hook implementation fails here, loudly

and then calls ``pm.hook.on_incoming_call(call=call)`` and so on, always by keyword.

Every implementation obeys the same rules: it never raises into the host (pluggy would re-raise
the exception in the host's call thread); it returns within the screen budget (setting
``screen_budget_ms``, default 800 ms) even when Salesforce hangs; failures become rows in the
external-integration error log; it is safe to call from many threads at once and from several
host processes sharing one instance folder (``SFCTI_HOME``).

``call`` is any object with the attributes of :class:`plugin.call.Call`: ``call_id``,
``direction``, ``remote_number``, ``local_number``, ``agent_id``, ``started_at``, ``ended_at``,
``answered``. A missing attribute or a value of the wrong type counts as unknown.

A *display* is a dict with all of these keys (values may be None): ``status`` ("matched",
"not_registered", "withheld" or "unavailable"), ``label`` (the text the screen shows),
``company``, ``person``, ``object`` ("Contact", "Account" or "Lead"), ``record_id``,
``record_url`` (Lightning URL) and ``number`` (E.164).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugin import hookspec

if TYPE_CHECKING:
    from plugin.call import Call

Display = dict[str, Any]

# -------------------------------------------------------------------------------------------------
# Screen hooks: called while a call screen is about to be drawn; the host waits for the answer
# -------------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def on_incoming_call(call: "Call") -> Display | None:
    """Return the display for an inbound call's ringing screen.

    Called by the host once per inbound call, when it starts ringing and before the ringing
    screen is drawn, on the host's call-handling thread (the host waits for the answer).

    A number registered in the local contacts answers at once. Otherwise Salesforce is looked up
    live; when the answer does not come within the screen budget the display says
    ``"unavailable"`` with the formatted number, and the lookup finishes in the background so the
    next call from that number answers from the cache. A withheld number ("anonymous", empty)
    answers ``"withheld"`` without any lookup.

    Stops at the first non-None result: the first plugin that knows the caller wins.

    :param call: the ringing call; ``direction`` is ``"inbound"``, ``remote_number`` is the
        caller's number exactly as the network delivered it, ``started_at`` is when it started
        ringing, ``ended_at`` and ``answered`` are still None.
    :returns: a display dict (see the module docstring), or None to let another plugin answer.
    """


@hookspec(firstresult=True)
def on_outgoing_call(call: "Call") -> Display | None:
    """Return the display for an outbound call's dialing screen.

    Called by the host once per outbound call, when an agent dials out and before the dialing
    screen is drawn, on the host's call-handling thread (the host waits for the answer). The
    answer follows the same rules and budget as :func:`on_incoming_call`.

    Stops at the first non-None result: the first plugin that knows the callee wins.

    :param call: the call being dialled; ``direction`` is ``"outbound"``, ``remote_number`` is
        the number as the agent dialled it (any format: "03-1234-5678", "+81312345678",
        full-width digits), ``agent_id`` is the agent who dialled.
    :returns: a display dict (see the module docstring), or None to let another plugin answer.
    """


# -------------------------------------------------------------------------------------------------
# Call lifecycle hooks: called for every plugin; return values are ignored
# -------------------------------------------------------------------------------------------------


@hookspec
def on_call_ended(call: "Call") -> None:
    """Record a finished call in the call history.

    Called by the host once when a call ends, answered or not, for inbound and outbound calls
    alike. Hosts may deliver the event more than once (a retry after a crash or a timeout): the
    call is recorded once per ``call_id`` and a repeated event changes nothing.

    The history row keeps direction, numbers, agent, start, end, whether it was answered, the
    duration and the display shown on the screen; company and person names are added as soon as
    the number is registered in the local contacts. Registration itself follows the
    ``contact_fetch`` setting: right after the call (off the host's thread), in the nightly run,
    or never. The host's thread only writes the history row.

    :param call: the ended call; ``ended_at`` is when it ended and ``answered`` tells whether
        anyone picked up (None when the host does not know).
    :returns: nothing; the return value is ignored.
    """
