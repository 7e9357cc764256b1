"""tidelake's pytest plugin, loaded through the `pytest11` entry point. Its fixtures are being built
(issue 17); importing it must stay cheap, since pytest loads it in every session."""
