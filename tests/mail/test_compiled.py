"""Compiled templates on disk (maildesk/mail/compiled.py): a later process loads what an
earlier one compiled, the text and HTML environments never share code, a changed template
is compiled anew, and without a safe directory templates are compiled in memory."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from maildesk.mail import compiled
from maildesk.mail.compiled import CompiledTemplates


def _env(templates: Path, cache: CompiledTemplates, *, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)), autoescape=autoescape)
    env.bytecode_cache = cache  # set after __init__: the suite's own cache is put there
    return env


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    directory = tmp_path / "templates"
    directory.mkdir()
    (directory / "hello.j2").write_text("Hello {{ name }}!", encoding="utf-8")
    return directory


def test_a_later_environment_loads_the_code_without_compiling(
    tmp_path: Path, templates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CompiledTemplates(str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    first = _env(templates, cache, autoescape=False)
    assert first.get_template("hello.j2").render(name="Ann") == "Hello Ann!"
    assert len(list((tmp_path / "cache").iterdir())) == 1

    compiles: list[str] = []
    original = jinja2.Environment.compile

    def counting(self: jinja2.Environment, source: str, *args: object, **kwargs: object) -> object:
        compiles.append(source)
        return original(self, source, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    later = _env(templates, CompiledTemplates(str(tmp_path / "cache")), autoescape=False)
    assert later.get_template("hello.j2").render(name="Ann") == "Hello Ann!"
    assert compiles == []


def test_text_and_html_environments_never_share_code(tmp_path: Path, templates: Path) -> None:
    (tmp_path / "cache").mkdir()
    cache = CompiledTemplates(str(tmp_path / "cache"))
    text = _env(templates, cache, autoescape=False)
    assert text.get_template("hello.j2").render(name="<b>") == "Hello <b>!"
    html = _env(templates, cache, autoescape=True)
    assert html.get_template("hello.j2").render(name="<b>") == "Hello &lt;b&gt;!"
    again = _env(templates, cache, autoescape=False)
    assert again.get_template("hello.j2").render(name="<b>") == "Hello <b>!"
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_a_changed_template_is_compiled_anew(tmp_path: Path, templates: Path) -> None:
    (tmp_path / "cache").mkdir()
    cache = CompiledTemplates(str(tmp_path / "cache"))
    assert _env(templates, cache, autoescape=False).get_template("hello.j2").render(name="A") == (
        "Hello A!"
    )
    (templates / "hello.j2").write_text("Goodbye {{ name }}.", encoding="utf-8")
    fresh = _env(templates, cache, autoescape=False)
    assert fresh.get_template("hello.j2").render(name="A") == "Goodbye A."


def test_without_a_safe_directory_templates_compile_in_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unsafe(self: CompiledTemplates) -> str:
        raise RuntimeError("Cannot determine safe temp directory.")

    monkeypatch.setattr(CompiledTemplates, "_get_default_cache_dir", unsafe)
    compiled.compiled_templates.cache_clear()
    try:
        assert compiled.compiled_templates() is None
        monkeypatch.undo()
        compiled.compiled_templates.cache_clear()
        assert isinstance(compiled.compiled_templates(), CompiledTemplates)
    finally:
        compiled.compiled_templates.cache_clear()
