"""`maildesk serve`: the SMTP listener, the pipeline and the outbox sender (by default in a
worker process beside the listener; `--workers 0`: all in one process and event loop).

Blocking database and SMTP-client work runs in small thread pools so the event loop keeps
answering SMTP clients. SIGTERM/SIGINT: stop accepting, finish stored work, exit. SIGHUP:
reload the config (a broken file is refused and the old config kept).

serve.py wires the parts; workers.py holds the loops and the SLA schedule; supervisor.py
restarts what dies and writes the heartbeat. `serve --workers N`: procs.py runs N pipeline
worker processes (pipeline_proc.py) instead of the pipeline loop. A worker process imports
only what it runs (no HTTP, no listeners): this package exports nothing, import its modules.
"""
