"""The nightly report's API calls are the requests the emulator received, not the batches of
numbers (a batch of unknown numbers takes several composite requests)."""

from core import registration
from helpers import fresh, rest_calls
from plugin.call import Call


def end_unscreened(host, numbers):
    """End calls this process never screened: recorded and queued at no API cost."""
    for number in numbers:
        host.hook.on_call_ended(call=Call(remote_number=number).end(duration=10))


def test_the_nightly_report_counts_the_requests_salesforce_received(connected, host, emulator):
    from core import jobs

    unknown = [fresh()[0] for _ in range(150)]        # unmatched: a second pass with odd variants
    end_unscreened(host, unknown + ["06-1111-2222", "090-3333-4444"])
    batches = -(-registration.queue_size(connected) // 100)
    report = jobs.register_contacts_for_day(connected, force=True, batch_size=100)
    assert (report.registered, report.failed) == (2, None)
    received = rest_calls(emulator)
    assert received > batches        # what the report used to say was not what was sent
    assert report.api_calls == received
    assert report.api_calls == emulator.api_calls["composite"] + emulator.api_calls["query_more"]


def test_a_failed_nightly_run_counts_the_request_that_failed(connected, host, emulator):
    from core import jobs

    end_unscreened(host, [fresh()[0] for _ in range(5)])
    emulator.faults.http_status = 503
    report = jobs.register_contacts_for_day(connected, force=True)
    assert report.failed == "SERVER_ERROR"
    assert report.api_calls == rest_calls(emulator) == 1
