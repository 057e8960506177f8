"""Measure the emulator's lookup latency: `python -m emulator.perf --size 300000`.

Builds an org with the data generator, starts the emulator, and times the three lookup queries
(Contact, Account, Lead: `Phone IN (...) OR MobilePhone IN (...)` over the stored-format variants
of a number) one by one and packed into one composite request, through simple-salesforce over
HTTPS on loopback: the latency a client sees, TLS and JSON included.

The variants are every form the generator writes for the number of a random contact (about as
many as a resolver asks for); a caller with its own variant list passes it to `main`. The
emulator never imports core/, so the resolver's own variant set is not used here.
"""
import argparse
import random
import statistics
import time
from urllib.parse import urlencode

import requests

from emulator.datagen import every_form, generate_records_and_truth


def lookup_queries(variants, person_accounts):
    """The SOQL of one caller lookup, for a list of stored-format variants."""
    values = ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in variants)
    account_phones = f"Phone IN ({values})"
    if person_accounts:
        account_phones += f" OR PersonMobilePhone IN ({values})"
    return [
        f"SELECT Id, Name, Phone, MobilePhone, AccountId, Account.Name, LastModifiedDate FROM Contact "
        f"WHERE Phone IN ({values}) OR MobilePhone IN ({values})",
        f"SELECT Id, Name, Phone, LastModifiedDate FROM Account WHERE {account_phones}",
        f"SELECT Id, Name, Company, Phone, MobilePhone, LastModifiedDate FROM Lead "
        f"WHERE IsConverted = false AND (Phone IN ({values}) OR MobilePhone IN ({values}))",
    ]


def generated_variants(records, truth, rnd):
    """Every form the generator writes for the number of a random contact's Phone."""
    contact = rnd.choice([c for c in records["Contact"][:5000] if (c["Id"], "Phone") in truth])
    return every_form(truth[(contact["Id"], "Phone")][0])


def _client(emu):
    from simple_salesforce import Salesforce, SalesforceLogin

    session = requests.Session()
    session.trust_env, session.verify = False, emu.ca_path
    session_id, instance = SalesforceLogin(username=emu.username, password=emu.password,
                                           security_token=emu.security_token, session=session,
                                           scratch_url=emu.login_url)
    return Salesforce(session_id=session_id, instance=instance, session=session)


def _timed(fn, rounds):
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1], timings[-1]


def main(argv=None, variants=None):
    """Print load time and lookup latencies (median / p95 / max, ms) for `variants` (or the
    generator's forms of one contact's number)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args(argv)
    from emulator import Emulator, Org

    records, truth = generate_records_and_truth(args.size, args.seed, True)
    started = time.perf_counter()
    org = Org(records, person_accounts=True)
    print(f"org of {sum(org.count().values())} records loaded in {time.perf_counter() - started:.1f} s")
    rnd = random.Random(args.seed)
    variants = variants or generated_variants(org.records, truth, rnd)
    queries = lookup_queries(variants, True)
    with Emulator(org) as emu:
        sf = _client(emu)
        for soql in queries:
            obj = soql.split(" FROM ")[1].split()[0]
            print(f"{obj:8} query ({len(variants)} variants): median %.1f  p95 %.1f  max %.1f ms"
                  % _timed(lambda: sf.query(soql), args.rounds))
        composite = {"compositeRequest": [
            {"method": "GET", "referenceId": f"q{i}",
             "url": "/services/data/v59.0/query/?" + urlencode({"q": soql})} for i, soql in enumerate(queries)]}
        print("composite of the three: median %.1f  p95 %.1f  max %.1f ms"
              % _timed(lambda: sf.restful("composite", method="POST", json=composite), args.rounds))


if __name__ == "__main__":
    main()
