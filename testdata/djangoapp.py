"""A single-module Django project: settings in code, templates in
djangotemplates/, sessions in signed cookies (no database needed)."""
import os

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="wsgo-tests-not-a-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ],
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
    TEMPLATES=[{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(os.path.dirname(os.path.abspath(__file__)), "djangotemplates")],
    }],
    USE_TZ=True,
)

import django  # noqa: E402

django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.urls import path  # noqa: E402


def page(request):
    return render(request, "page.html", {"title": "Django page", "items": ["alpha", "beta", "gamma"]})


def form(request):
    if request.method == "POST":
        return HttpResponse("thanks %s" % request.POST.get("name", ""))
    return render(request, "form.html")


def counter(request):
    n = request.session.get("n", 0) + 1
    request.session["n"] = n
    return JsonResponse({"n": n})


urlpatterns = [
    path("page/", page),
    path("form/", form),
    path("counter/", counter),
]

application = get_wsgi_application()
