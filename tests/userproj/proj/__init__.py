"""A project with its own Celery app (proj/celery.py), as a Django or Flask shop has one;
tests/test_user_app.py runs its worker and its web view."""
