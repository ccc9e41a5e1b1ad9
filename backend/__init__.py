"""Resumable, chunked PDF upload server."""
