"""Repository functions: every query the application makes, each taking ``session=`` keyword-only."""
