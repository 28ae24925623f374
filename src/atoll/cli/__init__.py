"""The `atoll` command line: one CLI for every role (cp, dp) and for the REST client commands."""
