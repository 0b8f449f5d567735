"""[kb]: the knowledge base's settings; every bad key named with the file and section, and
articles that cannot be read named by file and key (the others stay in)."""

from __future__ import annotations

from pathlib import Path

from maildesk.config import load_config
from maildesk.kb import knowledge_base
from tests.config.test_config import problems, write

DESK = '[desk]\naddress = "support@example.com"\n[[queues]]\nname = "it"\n'


def test_kb_settings_are_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "articles").mkdir()
    kb = load_config(
        write(
            tmp_path,
            DESK + '[kb]\npath = "articles"\nsuggest = 2\nmin_score = 1.5\n'
            'url = "https://help.example.com/kb/"\n',
        )
    ).kb
    assert kb.path == (tmp_path / "articles").resolve()
    assert kb.drafts == kb.path / "drafts"
    assert (kb.suggest, kb.min_score, kb.url) == (2, 1.5, "https://help.example.com/kb")
    assert not load_config(write(tmp_path, DESK)).kb.enabled


def test_bad_kb_keys_are_named_with_section_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        DESK + '[kb]\nsuggest = 99\nmin_score = "high"\nurl = "help"\ndrafts = "d"\ncolour = 1\n',
    )
    found = {(p.place, p.message.split(",")[0]) for p in problems(path)}
    assert {place for place, _ in found} == {
        "[kb] key 'suggest'",
        "[kb] key 'min_score'",
        "[kb] key 'url'",
        "[kb] key 'drafts'",
        "[kb] key 'colour'",
    }


def test_an_unreadable_article_is_named_and_left_out(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "good.md").write_text("---\ntitle: Good\ntags: [a]\n---\nText.\n", "utf-8")
    (folder / "no-title.md").write_text("+++\ntags = []\n+++\nText.\n", "utf-8")
    (folder / "bad-audience.md").write_text('+++\ntitle = "x"\naudience = "all"\n+++\n', "utf-8")
    (folder / "plain.md").write_text("Just text.\n", "utf-8")
    (folder / "broken.md").write_text("---\ntitle: [unclosed\n---\n", "utf-8")
    kb = knowledge_base(load_config(write(tmp_path, DESK + '[kb]\npath = "kb"\n')).kb)
    assert [a.slug for a in kb.articles] == ["good"]
    assert len(kb.problems) == 4
    text = "\n".join(kb.problems)
    assert "no-title.md key 'title'" in text and "bad-audience.md key 'audience'" in text
    assert "plain.md: must start with front matter" in text
    assert "broken.md: front matter is not valid YAML" in text
    # a file changed is read again at the next use (no watcher thread)
    (folder / "plain.md").write_text('+++\ntitle = "Now an article"\n+++\nText.\n', "utf-8")
    kb = knowledge_base(load_config(tmp_path / "maildesk.toml").kb)
    assert [a.slug for a in kb.articles] == ["good", "plain"]
