"""The interactive side of `tercet shell`: tab completion and the history file
(prompt-toolkit is imported only when the shell is interactive)."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory

from tercet.cli.shell import GROUPS, LEVELS, SPECS, find_spec

if TYPE_CHECKING:
    from tercet.cli.shell import Shell

#: Lines kept in the history file.
MAX_HISTORY_LINES = 10_000


class ShellHistory(FileHistory):
    """The history file (mode 0600), minus any line that carries more than a password
    command's JID: a password typed on the line by mistake is not kept."""

    def store_string(self, string: str) -> None:
        words = string.split()
        if words[:2] in (["user", "create"], ["user", "password"]) and len(words) > 3:
            return
        super().store_string(string)


def make_history(path: Path) -> ShellHistory:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    _trim(path)
    return ShellHistory(str(path))


def _trim(path: Path) -> None:
    """Keep the history file bounded: the newest entries only."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.count("\n") <= MAX_HISTORY_LINES * 3:
        return
    entries = text.split("\n\n")
    path.write_text("\n\n".join(entries[-MAX_HISTORY_LINES:]), encoding="utf-8")


class ShellCompleter(Completer):
    """Completes command words, then arguments by kind: online JIDs, hosts, module
    names, log levels (the server supplies the lists, see ``shell.complete``)."""

    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def get_completions(self, document: Document, complete_event: CompleteEvent
                        ) -> Iterator[Completion]:
        text = document.text_before_cursor
        try:
            words = shlex.split(text)
        except ValueError:
            return
        if text and not text[-1].isspace() and words:
            current = words.pop()
        else:
            current = ""
        for candidate in self._candidates(words):
            if candidate.startswith(current):
                yield Completion(candidate, start_position=-len(current))

    def _candidates(self, words: list[str]) -> Iterable[str]:
        data = self.shell.completion()
        if not words:
            extra = {c.split(".")[0] for c in data.get("commands", []) if "." in c}
            return sorted(set(GROUPS) | extra)
        if words[0] == "help":
            return self._candidates(words[1:]) if len(words) < 3 else []
        spec, used = find_spec(words)
        if spec is None:
            if len(words) == 1:
                verbs = {s.words.split()[1] for s in SPECS if s.words.startswith(words[0] + " ")}
                verbs |= {c.split(".", 1)[1] for c in data.get("commands", [])
                          if c.startswith(words[0] + ".")}
                return sorted(verbs)
            return []
        given = [w for w in words[used:] if not w.startswith("--")]
        params = spec.params
        flags = [f.rstrip("=") for f in spec.flags]
        kinds = [p.kind for p in params[len(given):len(given) + 2]]
        out: list[str] = []
        for kind in kinds:
            out += self._values(kind, data)
            if kind not in ("level",):
                break
        return out + flags

    @staticmethod
    def _values(kind: str, data: dict[str, list[str]]) -> list[str]:
        if kind == "jid":
            return data.get("jids", [])
        if kind == "host":
            return data.get("hosts", [])
        if kind == "module":
            return data.get("modules", [])
        if kind == "level":
            return list(LEVELS)
        return []
