"""In-memory stand-ins shared by the unit tests (one of each, imported, never copied)."""
