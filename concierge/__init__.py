"""The concierge bot: event intake, notifications, chat intents, scheduling and admin transcripts."""
