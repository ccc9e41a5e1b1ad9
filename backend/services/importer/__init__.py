"""The upload server's side of imports: it queues documents for the importer (its own
process, :mod:`backend.importer`), relays the importer's events to the WebSocket, and
searches the text index itself. Nothing here imports LlamaIndex or PDFium.
"""
