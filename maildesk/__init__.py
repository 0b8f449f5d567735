"""maildesk: an email-driven IT help desk and service desk daemon."""

__version__ = "0.1.0"
