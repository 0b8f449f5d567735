"""Ticket life: lifecycle, agent commands, replies relayed, SLA hooks on ticket changes."""
