"""The PostgreSQL backend (``STREAMING_DATABASE_URL=postgresql://...``): the document
repository, the text index (full-text search on a GIN index) and the durable import
queue (``FOR UPDATE SKIP LOCKED``), each in one module, over :mod:`.base`'s pool.

Every replica and importer shares these tables, so none holds state of its own. Each
store runs the same contract suite as its SQLite counterpart (``tests/storage``).
"""
