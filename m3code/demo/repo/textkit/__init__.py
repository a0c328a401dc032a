"""A tiny text utility package: the demo's example repository."""
