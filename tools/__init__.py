"""The agent's tools: one module per family, each tool a pydantic argument model and an async run."""
