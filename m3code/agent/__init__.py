"""The agent: one role prompt, a tool subset and a provider, looping until the work is done."""
