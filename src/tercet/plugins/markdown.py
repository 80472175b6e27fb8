"""Safe Markdown-to-HTML rendering for plugin READMEs (CommonMark, by markdown-it-py).

READMEs come from plugin authors and end up on the repository's pages, so the output must never
carry their markup or scripts: raw HTML is shown as text, and links and images keep only
http(s), mailto and relative targets (others, e.g. ``javascript:`` or ``data:``, stay plain
text). Links get ``rel="nofollow"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

__all__ = ["render_markdown"]

# A README is documentation, not a book: bound the work done on one.
MAX_INPUT_CHARS = 512 * 1024
# Block nesting depth; a list level counts two (list and item). What lies deeper, and the rest
# of the document after it, is dropped (markdown-it's rule), so this is not small.
MAX_NESTING = 16
_SAFE_SCHEMES = {"http", "https", "mailto"}


class _ReadmeMarkdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:  # noqa: N802 (markdown-it-py's name)
        """Keep http(s), mailto and relative links and images; a link to anything else stays
        text. *url* is normalized (entities decoded, control characters percent-encoded);
        to be strict, "java%09script:" is checked as "javascript:"."""
        plain = "".join(c for c in unquote(url) if c > " " and c != "\x7f")
        try:
            scheme = urlsplit(plain).scheme.lower()
        except ValueError:
            return False
        return not scheme or scheme in _SAFE_SCHEMES


def _link_open(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict,
               env: EnvType) -> str:
    tokens[idx].attrSet("rel", "nofollow")
    return self.renderToken(tokens, idx, options, env)


def _code_block(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict,
                env: EnvType) -> str:
    """Fenced and indented code; quotes stay as they are, only <, > and & are escaped."""
    token = tokens[idx]
    words = unescapeAll(token.info).split()
    lang = f' class="{options.langPrefix}{escape(words[0])}"' if words else ""
    return f"<pre><code{lang}>{escape(token.content, quote=False)}</code></pre>\n"


def _renderer() -> MarkdownIt:
    md = _ReadmeMarkdown("commonmark", {"html": False, "xhtmlOut": False,
                                        "maxNesting": MAX_NESTING})
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("fence", _code_block)
    md.add_render_rule("code_block", _code_block)
    return md


_MD = _renderer()


def render_markdown(text: str) -> str:
    """Render Markdown *text* to an HTML fragment (no ``<html>``/``<body>``)."""
    html: str = _MD.render(text[:MAX_INPUT_CHARS])
    return html


def inline(text: str) -> str:
    """Render the inline Markdown of one block (no enclosing ``<p>``)."""
    html: str = _MD.renderInline(text[:MAX_INPUT_CHARS])
    return html
