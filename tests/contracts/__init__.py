"""Contract test-suites: every implementation of a port runs the same tests (subclass and provide fixtures)."""
