"""Command-line tools: ``p2k`` (subcommands), ``rump_server``, ``rump_allserver``, ``rump.halt``."""
