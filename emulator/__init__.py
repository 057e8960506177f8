"""A local Salesforce that speaks the real wire protocol, for the demo, tests and benchmarks."""
