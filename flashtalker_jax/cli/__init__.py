"""The `flashtalker` command: one entry point, one small module per command group."""
