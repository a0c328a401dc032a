"""Sessions: the append-only event log every view of a job is built from."""
