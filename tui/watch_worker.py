"""The app's folder watcher: keeps the watched folders in sync while the app is open.

Started once the engine is open (``watch.in_app``), it runs the engine's ``FolderSync`` in
a worker: a catch-up run, then file events. The last event is kept on the app and shown by
the library screen (watching / syncing / last change), which reloads its documents when a
sync ends. ``watchfiles`` is imported by the worker only, after the first paint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.types import WatchEvent

if TYPE_CHECKING:
    from tui.app import ParleyApp


def watch_line(event: WatchEvent | None, folders: int) -> str:
    """The library screen's one-line watch status."""
    if folders == 0 and (event is None or event.state == "watching"):
        return "Not watching any folder (parley watch add PATH)"
    if event is None:
        return "Watching: starting…"
    last = f"{event.at:%H:%M:%S}" if event.at else ""
    if event.state == "syncing":
        return f"Syncing {event.folder} ({event.changed:,} changed)…"
    if event.state == "error":
        return f"Watch error at {last}: {event.detail}"
    label = f"Watching {folders} folder{'s' if folders != 1 else ''}"
    if event.state == "synced":
        moved = f", {event.linked} renamed/copied" if event.linked else ""
        removed = f", {event.removed} removed" if event.removed else ""
        return f"{label} · last change {last}: {event.indexed} indexed{moved}{removed}"
    return label


async def keep_in_sync(app: ParleyApp) -> None:
    """The worker body: sync the watched folders until the app closes."""
    engine = await app.ready_engine()
    app.folder_count = len(await engine.watched.list())
    if not app.folder_count:
        return  # nothing to watch: no worker left running (folders added later: next start)

    def seen(event: WatchEvent) -> None:
        app.folder_news = event if event.state != "watching" or app.folder_news is None \
            or app.folder_news.state not in ("synced", "error") else app.folder_news
        if event.state == "watching" and event.folder:
            app.folder_count = len(event.folder.split(", "))
        screen = app.screen
        show = getattr(screen, "show_watch", None)
        if show is not None:
            show(app.folder_news, app.folder_count, refresh=event.state == "synced")

    try:
        await engine.folder_sync(on_event=seen).run()
    except Exception as exc:  # the app keeps running; the library screen says it stopped
        seen(WatchEvent("error", None, detail=f"watching stopped: {exc}"))
        app.report(exc)
