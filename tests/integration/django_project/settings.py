"""A minimal Django project on the test PostgreSQL, in the schema ``OUTBOX_TEST_SCHEMA`` (one per test run)."""

import os

SECRET_KEY = "outbox-test"
USE_TZ = True
INSTALLED_APPS = ["dispatch.contrib.django", "shop"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("OUTBOX_TEST_DATABASE", "test"),
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "OPTIONS": {"options": f"-c search_path={os.environ['OUTBOX_TEST_SCHEMA']}"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
