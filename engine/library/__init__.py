"""Library: the user's collections and documents, and searching them.

``service`` lists and deletes collections and documents and drives ingestion and
re-embedding (``Library``; the ingestion pipeline itself is ``engine.ingest``);
``retrieval`` is hybrid search over chunks (BM25 and vectors, fused) with its filters.
"""
