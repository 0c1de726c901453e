"""Chat: one turn from question to stored, cited answer.

``service`` is the ``Chat`` verbs the facade exposes (ask, regenerate, edit); ``turn`` runs
one turn (store the question, retrieve, build the prompt, stream, store the answer with its
citations and usage); ``prompt`` fits history and sources into the model's context window;
``citations`` matches the answer's ``[n]`` markers to the sources it was given.
"""
