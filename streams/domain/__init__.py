"""Pure domain core: no I/O, no frameworks (import-linter contract in pyproject.toml)."""
