"""The release district: the release candidate, golden set, container image, gate 3 with its
checks and consumer contracts, promote, rollback, reproduce and the load test."""
