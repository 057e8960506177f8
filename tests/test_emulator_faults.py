"""Fault injection, the request log, concurrency and lookup speed."""
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from simple_salesforce.exceptions import SalesforceGeneralError

from helpers import client_for, login, trusting_session

LOOKUP = "SELECT Id, Name FROM Contact WHERE Phone IN ('03-1234-5678') OR MobilePhone IN ('03-1234-5678')"


def test_latency_is_added_to_each_request(sf, emulator):
    emulator.faults.latency = 0.3
    started = time.perf_counter()
    sf.query(LOOKUP)
    assert time.perf_counter() - started >= 0.3


def test_hang_blocks_until_the_client_gives_up_then_clears(sf, emulator):
    emulator.faults.hang = True
    with pytest.raises(requests.exceptions.ReadTimeout):
        sf.session.get(f"https://{sf.sf_instance}/services/data/v59.0/limits/", headers=sf.headers, timeout=0.3)
    emulator.faults.hang = False
    assert sf.query(LOOKUP)["totalSize"] == 1


def test_cleared_hang_releases_waiting_requests(sf, emulator):
    emulator.faults.hang = True
    result = {}
    worker = threading.Thread(target=lambda: result.update(sf.query(LOOKUP)))
    worker.start()
    time.sleep(0.3)
    assert worker.is_alive()
    emulator.faults.clear()
    worker.join(timeout=5)
    assert result["totalSize"] == 1


@pytest.mark.parametrize("status", [500, 503])
def test_http_status_fault(sf, emulator, status):
    emulator.faults.http_status = status
    with pytest.raises(SalesforceGeneralError) as info:
        sf.query(LOOKUP)
    assert info.value.status == status
    login(emulator)                      # login is not REST: unaffected


def test_reset_fault_drops_the_connection(sf, emulator):
    emulator.faults.reset = True
    with pytest.raises(requests.exceptions.ConnectionError):
        sf.query(LOOKUP)
    assert emulator.request_log[-1]["status"] == "reset"
    emulator.faults.reset = False
    assert sf.query(LOOKUP)["totalSize"] == 1


def test_reset_also_hits_login(emulator):
    emulator.faults.reset = True
    with pytest.raises(requests.exceptions.ConnectionError):
        login(emulator)


def test_faults_limited_to_kinds_and_times(sf, emulator):
    emulator.faults.set(http_status=503, kinds={"query"}, times=1)
    assert sf.search("FIND {0312345678} IN PHONE FIELDS")["searchRecords"]
    with pytest.raises(SalesforceGeneralError):
        sf.query(LOOKUP)
    assert sf.query(LOOKUP)["totalSize"] == 1


def test_unknown_fault_names_are_refused(emulator):
    with pytest.raises(AttributeError):
        emulator.faults.set(explode=True)
    with pytest.raises(ValueError):
        emulator.faults.login_fault = "NOT_A_FAULT"


def test_request_log_describes_each_request(sf, emulator):
    sf.query(LOOKUP)
    entry = emulator.request_log[-1]
    assert {k: entry[k] for k in ("method", "path", "kind", "soql", "status")} == {
        "method": "GET", "path": "/services/data/v59.0/query/", "kind": "query", "soql": LOOKUP, "status": 200}
    assert entry["duration_ms"] >= 0
    assert emulator.calls("query") == [entry]
    emulator.reset_counters()
    assert emulator.request_log == [] and emulator.api_calls == {} and emulator.api_usage()[0] == 0


def test_many_clients_at_once(emulator):
    clients = [client_for(emulator) for _ in range(5)]

    def work(i):
        sf = clients[i % len(clients)]
        return [sf.query(LOOKUP)["totalSize"] for _ in range(4)]

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(work, range(50)))
    assert results == [[1, 1, 1, 1]] * 50
    assert emulator.api_calls["query"] == 200


def test_fresh_connections_in_parallel(emulator):
    # Each thread its own session: 25 TLS handshakes at once must not stall the accept loop.
    def work(_):
        session_id, instance = login(emulator, trusting_session(emulator))
        return bool(session_id)

    with ThreadPoolExecutor(max_workers=25) as pool:
        assert all(pool.map(work, range(25)))


def big_org(size):
    """`size` records split over Account, Contact and Lead, phones typed in mixed formats."""
    from emulator import Org

    rnd = random.Random(7)
    formats = ("03-{a}-{b}", "03{a}{b}", "+81 3-{a}-{b}", "090-{a}-{b}", "(03) {a}-{b}")

    def phone():
        return rnd.choice(formats).format(a=rnd.randint(1000, 9999), b=rnd.randint(1000, 9999))

    third = size // 3
    return Org(records={
        "Account": [{"Name": f"会社{i}", "Phone": phone()} for i in range(third)],
        "Contact": [{"LastName": f"姓{i}", "FirstName": "名", "Phone": phone(), "MobilePhone": phone()}
                    for i in range(third)],
        "Lead": [{"LastName": f"姓{i}", "Company": f"会社{i}", "Phone": phone(), "MobilePhone": phone(),
                  "IsConverted": i % 4 == 0} for i in range(third)],
    })


def test_lookup_on_a_300k_org_answers_under_50_ms(tmp_path):
    from emulator import Emulator

    org = big_org(300_000)
    target = org.records["Contact"][12345]["Phone"]
    variants = ", ".join(f"'{v}'" for v in [target] + [f"03-{i:04d}-0000" for i in range(40)])
    queries = [f"SELECT Id, Name, Phone, MobilePhone, AccountId, Account.Name, LastModifiedDate FROM Contact "
               f"WHERE Phone IN ({variants}) OR MobilePhone IN ({variants})",
               f"SELECT Id, Name, Phone, LastModifiedDate FROM Account WHERE Phone IN ({variants})",
               f"SELECT Id, Name, Company, LastModifiedDate FROM Lead WHERE IsConverted = false AND "
               f"(Phone IN ({variants}) OR MobilePhone IN ({variants}))"]
    with Emulator(org, cert_dir=str(tmp_path)) as emu:
        sf = client_for(emu)
        timings = []
        for _ in range(10):
            for soql in queries:
                started = time.perf_counter()
                sf.query(soql)
                timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.050
    assert max(timings) < 0.250
