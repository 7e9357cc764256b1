"""tidelake for users' own tests: a pytest plugin (entry point `pytest11: tidelake`) and, later, a
testcontainers module. See docs/testing.md."""
