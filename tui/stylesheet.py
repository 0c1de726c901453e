"""The app's stylesheet: Textual's, parsed once per run and kept between runs.

Parsing the app's CSS and every widget's default CSS took about 40 million instructions of
every launch, for rules that change only when Parley, Textual or the theme does. Rules
parsed once are kept in a cache file per theme (``css-rules-*.pickle`` in
``PARLEY_HOME/cache``, else the user cache directory) holding Textual's version and the
theme's variables, by the CSS text and where it was read from; the next launch loads them
instead. The file is written after the first frame, atomically, with the entries that run
used, when one of them had to be parsed. A missing, damaged or unreadable file means
parsing as before, never an error; it is written by and for the user who runs Parley, like
the byte code Python keeps beside its modules.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import zlib
from pathlib import Path
from typing import Any

import textual
from textual.css.stylesheet import Stylesheet

def cache_path(variables: dict[str, str]) -> Path:
    """The file for rules parsed with ``variables`` (one per theme)."""
    name = f"css-rules-{zlib.crc32(repr(sorted(variables.items())).encode()):08x}.pickle"
    home = os.environ.get("PARLEY_HOME")
    if home:
        return Path(home).expanduser() / "cache" / name
    from platformdirs import user_cache_path

    return user_cache_path("parley") / name


Key = tuple[str, Any, bool, int, str]  # the CSS, where it was read from, and how


class RuleCache:
    """Rules parsed with one set of theme variables, kept between runs (see the module
    docstring). The file holds Textual's version and the variables: rules parsed by
    another Textual or for other variables are never used."""

    def __init__(self, variables: dict[str, str]) -> None:
        self.variables = dict(variables)
        self.path = cache_path(variables)
        self._stored: dict[Key, Any] | None = None  # read on first use
        self.used: dict[Key, Any] = {}
        self.parsed = 0  # entries not found in the file this run

    def _load(self) -> dict[Key, Any]:
        if self._stored is None:
            self._stored = {}
            with contextlib.suppress(Exception):  # missing, damaged, from another version
                with self.path.open("rb") as stored:
                    data = pickle.load(stored)
                if (data.get("textual") == textual.__version__
                        and data.get("variables") == self.variables):
                    self._stored = data["rules"]
        return self._stored

    def get(self, key: Key) -> Any | None:
        rules = self._load().get(key)
        if rules is not None:
            self.used[key] = rules
        return rules

    def put(self, key: Key, rules: Any) -> None:
        self.used[key] = rules
        self.parsed += 1

    def save(self) -> None:
        """Write what this run used, if anything was parsed anew (errors are ignored)."""
        if not self.parsed:
            return
        self.parsed = 0
        with contextlib.suppress(Exception):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".css-rules-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    pickle.dump({"textual": textual.__version__, "variables": self.variables,
                                 "rules": self.used}, out, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, self.path)
            finally:
                Path(tmp).unlink(missing_ok=True)


class KeptStylesheet(Stylesheet):
    """Textual's stylesheet with parsed rules kept, within a run and between runs.

    Within a run: Textual refreshes the CSS when the first screen mounts; it sets the
    variables again (which throws away every parsed rule, even when they did not change)
    and re-parses every source into a fresh stylesheet (with an empty cache). The whole CSS
    was parsed twice before the first frame; here rules parsed with the same variables are
    kept. Between runs: ``cache`` (see the module docstring)."""

    def __init__(self, *, variables: dict[str, str] | None = None,
                 keep: bool = False) -> None:
        """``keep``: keep parsed rules between runs too (``RuleCache``)."""
        super().__init__(variables=variables)
        self.cache = RuleCache(self._variables) if keep else None

    def set_variables(self, variables: dict[str, str]) -> None:
        if variables != self._variables:
            super().set_variables(variables)
            if self.cache is not None:  # another theme: its own rules
                self.cache = RuleCache(self._variables)

    def _parse_rules(self, css: str, read_from: Any, is_default_rules: bool = False,
                     tie_breaker: int = 0, scope: str = "") -> Any:
        key: Key = (css, read_from, is_default_rules, tie_breaker, scope)
        if self.cache is None or key in self._parse_cache:
            return super()._parse_rules(css, read_from, is_default_rules, tie_breaker, scope)
        rules = self.cache.get(key)
        if rules is None:  # parsed (an error raises, as in Textual) and kept in this run
            rules = super()._parse_rules(css, read_from, is_default_rules, tie_breaker, scope)
            self.cache.put(key, rules)
        else:
            self._parse_cache[key] = rules
        return rules

    def reparse(self) -> None:
        # Textual's reparse (a fresh stylesheet, so an error leaves this one intact) with
        # this one's caches: the same variables give the same rules.
        fresh = KeptStylesheet(variables=self._variables)
        fresh.cache = self.cache
        fresh._parse_cache = self._parse_cache
        for read_from, (css, is_defaults, tie_breaker, scope) in self.source.items():
            fresh.add_source(css, read_from=read_from, is_default_css=is_defaults,
                             tie_breaker=tie_breaker, scope=scope)
        try:
            fresh.parse()
        except Exception:
            self._invalid_css.update(fresh._invalid_css)
            raise
        self._rules = fresh.rules
        self._rules_map = None
        self.source = fresh.source
        self._require_parse = False
