"""The Agent Team: a planner, concurrent producers in their own worktrees, an adversarial verifier."""
