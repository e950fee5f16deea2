"""Telling someone when a file is late or cannot be loaded: what to say, and posting it to a webhook."""
