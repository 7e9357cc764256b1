"""The `tidelake` sub-commands, one module per command group; `tidelake.cli` wires them together."""
