"""Routing: pure decisions about one message: guard, bounce, thread, proof, conditions, rules."""
