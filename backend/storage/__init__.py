"""Where bytes and state live: protocols in ``base``, embedded implementations beside it."""
