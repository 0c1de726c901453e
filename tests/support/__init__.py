"""Reusable test support: real local servers and helpers shared by the test suites.

``tests.support.openai_server``: an OpenAI-compatible HTTP server on 127.0.0.1.
"""
