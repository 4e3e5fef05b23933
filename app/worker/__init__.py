"""The streaming worker: Faust agents around the pure detection engine."""
