"""How a chat is set up: which documents it searches, the settings a session keeps, personas,
attachments and the model's real context window.

This package owns everything between "the user has a question" and "the turn knows what to
send": the scope of a session's search (all of the user's collections unless scoped), the
per-session settings (provider, model, encrypted system prompt, collections, RAG switch,
temperature, max tokens, top-k), named presets (personas, from the config file or saved in
the database), files attached to a question (stored encrypted with it and numbered as
sources the answer cites), and the context window each model server reports about itself
(cached per provider and model). ``engine.chat`` calls it to build each turn; front ends
reach it through ``engine.chat`` and ``engine.personas``.
"""
