"""The knowledge base: Markdown articles read from `[kb] path`, and the suggestions made
from them (BM25 over title, tags and text). Read by notify (acknowledgements) and tickets
(`#kb SLUG`, `#kb-draft`); no database.

    articles.py  one article file: front matter (TOML `+++` or YAML `---`) and text
    index.py     the folder, re-read when a file changes; search and suggestions
    rank.py      words and BM25
"""

from maildesk.kb.articles import Article, ArticleError
from maildesk.kb.index import KnowledgeBase, Suggestion, knowledge_base

__all__ = ["Article", "ArticleError", "KnowledgeBase", "Suggestion", "knowledge_base"]
