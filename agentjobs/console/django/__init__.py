"""The console as a Django app, behind the admin's login (staff only).

    INSTALLED_APPS = [..., "django.contrib.admin", "django.contrib.auth", ...,
                      "agentjobs.console.django"]
    urlpatterns = [..., path("ops/", include("agentjobs.console.django.urls"))]

The views hand each request to the same pages ``agentjobs console`` serves. Django is
imported by this app's modules only (``apps``, ``urls``, ``views``), never by agentjobs
itself: it stays an optional dependency.
"""
