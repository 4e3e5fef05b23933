"""The development commands of the `seqwatch` CLI (kafka, bench, demo): present when devtools is."""
