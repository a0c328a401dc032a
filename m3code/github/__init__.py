"""GitHub for CI: a job's work as a pull request (`run --pr`, `pr open`), and tasks from issues (`--from-issue`).

Nothing here is imported unless one of those features is asked for, so plain `m3code run` stays light.
"""
