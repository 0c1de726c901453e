"""The app's stylesheet: Textual's, keeping what it parsed while the theme stays the same."""

from __future__ import annotations

from textual.css.stylesheet import Stylesheet


class KeptStylesheet(Stylesheet):
    """Textual refreshes the CSS when the first screen mounts: it sets the variables again
    (which throws away every parsed rule, even when they did not change) and re-parses
    every source into a fresh stylesheet (with an empty cache). The whole CSS was parsed
    twice before the first frame; here rules parsed with the same variables are kept."""

    def set_variables(self, variables: dict[str, str]) -> None:
        if variables != self._variables:
            super().set_variables(variables)

    def reparse(self) -> None:
        # Textual's reparse (a fresh stylesheet, so an error leaves this one intact) with
        # this one's cache: the same variables give the same rules.
        fresh = KeptStylesheet(variables=self._variables)
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
