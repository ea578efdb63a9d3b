"""Settings shared by the ensemble tests."""

#: Short ticks so sessions expire in a couple of seconds; a tight election timeout.
FAST = {"tick_time": 250, "heartbeat_interval": 50, "election_timeout": 500}
