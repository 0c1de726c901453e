"""History: the user's chat sessions as stored, encrypted, rows.

``sessions`` lists, shows, renames and deletes sessions (``SessionStore``); ``branches``
keeps the alternative versions of a question or answer and which one is active; ``search``
finds text in the encrypted history by decrypting it in batches; ``transfer`` exports and
imports sessions (Markdown, JSON).
"""
