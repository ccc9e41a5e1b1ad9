"""HTTP and WebSocket edge: parse, call a service, shape the answer. No rules here."""
