"""The volunteer: trains its shard into a proof-of-learning trace (trainer) and runs the daemon loop."""
