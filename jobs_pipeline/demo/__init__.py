"""Demo data: a synthetic wind fleet with injected faults, the sample inverter CSVs
(`sample_data/`) and the seeding that stores a fleet in a performance database.

It sits above `perfdb` (it writes through its API) and is used by the `demo` command, the demo
script, benchmarks and tests; nothing of the pipeline itself imports it."""
