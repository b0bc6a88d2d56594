"""`streamer` subcommands, one module each (see streamer/cli.py)."""
