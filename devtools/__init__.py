"""seqwatch's development tooling: the event generator, the benchmark, the local Kafka
broker and the worker-process harness. Not installed with seqwatch (pyproject.toml
installs `app` only); `make install` puts this checkout on the dev virtualenv's path."""
