"""Server-rendered HTML: the Jinja2 templates in templates/dashboard/ (autoescaped; no
script anywhere, so a page is what the server sent)."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from maildesk.mail.render import package_templates_dir


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(package_templates_dir() / "dashboard")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def page(
    name: str, status: int = 200, headers: dict[str, str] | None = None, **ctx: Any
) -> HTMLResponse:
    """templates/dashboard/<name>.html.j2 rendered with ctx."""
    html = _environment().get_template(f"{name}.html.j2").render(**ctx)
    return HTMLResponse(html, status_code=status, headers=headers)
