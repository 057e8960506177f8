"""Core of sfcti: phone numbers, Salesforce client, resolver, storage, errors, alerts, jobs (no Flask, no pluggy)."""
