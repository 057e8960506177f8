"""Two host processes x 25 threads x 20 calls sharing one instance folder, against the emulator:
no error, no history row lost or doubled, every answered call's display correct."""

import json
import os
import subprocess
import sys
import textwrap
import time

from helpers import ROOT, SAMPLE, UNKNOWN, connect

PROCESSES, THREADS, CALLS = 2, 25, 20

# (number as dialled, E.164) - several formats of each sample number, one unknown, one withheld
DIALLED = [
    ("03-1234-5678", "+81312345678"), ("+81312345678", "+81312345678"),
    ("０３－１２３４－５６７８", "+81312345678"), ("090-1111-2222", "+819011112222"),
    ("09033334444", "+819033334444"), ("(06) 1111-2222", "+81611112222"),
    ("+1 415 555 1212", "+14155551212"), ("03-9876-0000", UNKNOWN), ("anonymous", None),
]

HOST = textwrap.dedent("""
    import concurrent.futures, json, sys, traceback
    import pluggy
    import plugin.hookspecs
    from plugin.call import Call

    tag, threads, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    dialled = json.loads(sys.argv[4])
    pm = pluggy.PluginManager("telephony")
    pm.add_hookspecs(plugin.hookspecs)
    pm.load_setuptools_entrypoints("telephony")
    pm.check_pending()

    def agent(t):
        out = []
        for i in range(calls):
            number = dialled[(t * calls + i) % len(dialled)][0]
            call = Call(call_id=f"{tag}-{t}-{i}", direction=("inbound", "outbound")[i % 2],
                        remote_number=number, agent_id=f"{tag}-{t}")
            hook = pm.hook.on_incoming_call if i % 2 == 0 else pm.hook.on_outgoing_call
            display = hook(call=call)
            call.end(answered=i % 5 != 0, duration=i)
            pm.hook.on_call_ended(call=call)
            if i % 3 == 0:
                pm.hook.on_call_ended(call=call)   # a host retry: must change nothing
            out.append([call.call_id, number, display])
        return out

    try:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            results = [r for rs in pool.map(agent, range(threads)) for r in rs]
        from core.runtime import runtime_for
        runtime_for().wait_idle(30)
        print(json.dumps(results, ensure_ascii=False))
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
""")


def test_two_processes_25_threads_20_calls_share_one_instance_folder(store, home, emulator):
    from core import history
    from core.errors import list_errors
    from core.settings import save_settings

    connect(store, emulator, contact_fetch="after_call")
    save_settings(store, {"screen_budget_ms": 5000})  # correctness here; the budget has its own tests
    env = dict(os.environ, PYTHONPATH=str(ROOT), SFCTI_HOME=str(home), SFCTI_JOBS="off")
    started = time.monotonic()
    hosts = [subprocess.Popen([sys.executable, "-c", HOST, f"p{p}", str(THREADS), str(CALLS),
                               json.dumps(DIALLED)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(PROCESSES)]
    outputs = [h.communicate(timeout=120) for h in hosts]
    took = time.monotonic() - started
    for h, (out, err) in zip(hosts, outputs):
        assert h.returncode == 0, err
    results = [r for out, _ in outputs for r in json.loads(out)]
    assert len(results) == PROCESSES * THREADS * CALLS

    expected = dict(DIALLED)
    for call_id, number, display in results:
        e164 = expected[number]
        assert display["number"] == e164, (call_id, number, display)
        if e164 is None:
            assert display["status"] == "withheld"
        elif e164 == UNKNOWN:
            assert display["status"] == "not_registered"
        else:
            company, person, object_name = SAMPLE[e164]
            assert (display["status"], display["company"], display["person"], display["object"]) \
                == ("matched", company, person, object_name), (call_id, number, display)

    rows = {r["call_id"]: r for r in history.list_calls(store, limit=10_000)}
    assert len(rows) == len(results) == history.count_calls(store)
    for call_id, number, display in results:
        row = rows[call_id]
        assert (row["remote_number"], row["label"], row["status"]) == \
            (number, display["label"], display["status"])
        if display["status"] == "matched":
            assert (row["company"], row["person"]) == (display["company"], display["person"])
    assert list_errors(store) == []
    assert store.count_contacts() == len(SAMPLE)
    assert took < 60, f"took {took:.1f} s"
