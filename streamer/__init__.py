"""streamer: real-time signal engine for systematic equity flows."""

__version__ = "0.1.0"
