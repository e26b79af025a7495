from django.urls import path

from jobs import views

urlpatterns = [
    path("", views.submit, name="job-submit"),
    path("<str:task_id>", views.status, name="job-status"),
]
