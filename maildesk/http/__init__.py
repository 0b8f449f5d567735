"""HTTP in `maildesk serve`: the JSON API, Prometheus metrics, /healthz, the dashboard and
the requester status page (docs/http.md).

    app.py        the FastAPI app: problem details, tokens as dependencies
    auth.py       tokens, dashboard sessions, failed-login limits
    api.py        /api/tickets, /api/sla, /api/reports, /healthz
    metrics.py    /metrics and the gauges read from the store
    dashboard.py  /, /login, /logout, /tickets/{ref}
    status.py     /status/{token}
    pages.py      the Jinja2 pages of templates/dashboard/
    server.py     uvicorn in the daemon's event loop
"""
