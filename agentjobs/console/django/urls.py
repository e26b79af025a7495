"""Every console page under the prefix the project mounts this at (one pattern: the
console routes by itself)."""

from __future__ import annotations

from django.urls import re_path

from agentjobs.console.django import views

app_name = "agentjobs_console"
urlpatterns = [re_path(r"^(?P<path>.*)$", views.page, name="page")]
