"""`make run`'s entry point: this service's application, demo data and demo users, run by messaging.embedded (API,
Celery worker and beat in one process, with a private PostgreSQL and Redis for the settings not given).

Here rather than in messaging: the chat never imports the bot or the application (`make lint`'s import
contracts).
"""

from __future__ import annotations

import sys

from app import create_app
from concierge import demo_data
from messaging import embedded

if __name__ == "__main__":
    sys.exit(embedded.main(create_app, demo_data.seed_demo_data, demo_data.DEMO_USERS, demo_data.try_event))
