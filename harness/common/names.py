"""Names the user types and the lists they must come from: the nearest known name as a suggestion,
and one registry per kind of part (providers, bootstrappers) that the matrix validates against."""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

from .errors import UserError


def nearest(word: str, choices) -> str:
    close = difflib.get_close_matches(word.lower(), sorted(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(kind: str, word: str, known, spellings=None) -> UserError:
    """`unknown arch 'ppc64e' (did you mean 'ppc64el'?); known: amd64, ...` (suggested from
    `spellings`, aliases included, when given)."""
    return UserError(f"unknown {kind} '{word}'{nearest(str(word), spellings or known)}; known: {', '.join(known)}")


@dataclass(frozen=True)
class Entry:
    """One line of a registry: where the implementation is (imported only when a cell uses it)
    and what the matrix must know about it before any is imported."""

    impl: str  # "package.module:Class"
    windows: bool = False  # provides / bootstraps Windows nodes
    this_machine: bool = False  # a provider that is this machine: its own arch and distro only
    base_image: bool = False  # a provider whose nodes boot from a cached base image (`list --image-keys`)

    def load(self) -> type:
        module, cls = self.impl.split(":")
        return getattr(importlib.import_module(module), cls)


class Registry(dict):
    """name -> Entry, in the order the matrix sorts cells by."""

    def __init__(self, kind: str, entries: dict[str, Entry]):
        super().__init__(entries)
        self.kind = kind

    def entry(self, name: str) -> Entry:
        if name not in self:
            raise unknown(self.kind, name, self)
        return self[name]

    def having(self, **facts) -> list[str]:
        return [n for n, e in self.items() if all(getattr(e, k) == v for k, v in facts.items())]
