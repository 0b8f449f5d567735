"""Notifications: render templates, write them to the outbox, deliver them."""
