"""``engine.drift``: whether a stored citation still holds against the current index.

A citation keeps the hash of the chunk it cited and of its document at answer time. This
package owns telling, whenever a citation is shown, whether its source still says that:
``current`` (same text at the same place), ``moved`` (the same passage found again in the
current version of the file, at a new page or lines), ``changed`` (the passage is no longer
there: the stored snippet is all there is) or ``missing`` (the document was removed). It
reads only what is indexed (chunk hashes first, then the chunks' text: exact, then fuzzy),
never the files, and costs a few queries per session shown.
"""

from engine.drift.check import CHANGED, CURRENT, MISSING, MOVED, check_citations

__all__ = ["CHANGED", "CURRENT", "MISSING", "MOVED", "check_citations"]
