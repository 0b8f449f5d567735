"""Mail as data: parsed messages, addresses, composing outgoing MIME, transports. No database."""
