"""`seqwatch coverage`: what Kibana's schedule finds of a recording, against the stream.

recording (read once) -> schedule (Kibana's runs, windows and cap) and stream (the
worker's semantics) -> report (both, missed with a reason, delays) -> plot.
"""
