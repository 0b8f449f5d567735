"""Parsing: raw bytes to a ParsedMessage (tree, headers, bodies, attachments, reply text).

Pure: no database, no network.
"""
