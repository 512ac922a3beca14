"""The chat domain: conversations, messages, read state, property threads, auth and live updates."""
