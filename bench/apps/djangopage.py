"""djangopage: a Django view rendering a template with a list of 20 items; no database.

Django is configured in code (settings.configure) so that this one module is the whole project:
settings, URLconf and view.
"""

import os

import django
from django.conf import settings
from django.urls import path

HERE = os.path.dirname(os.path.abspath(__file__))

settings.configure(
    DEBUG=False,
    SECRET_KEY="wsgo-bench-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    # CommonMiddleware, in every new Django project, sets Content-Length; without it
    # uWSGI's http11-socket would end the page by closing the connection.
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    DATABASES={},
    USE_TZ=True,
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [os.path.join(HERE, "templates")],
            "APP_DIRS": False,
        }
    ],
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.shortcuts import render  # noqa: E402

ITEMS = [{"id": i, "name": "Item number %d" % i, "price": "%.2f" % (i * 1.25)} for i in range(20)]


def index(request):
    return render(request, "page.html", {"title": "wsgo benchmark", "items": ITEMS})


urlpatterns = [path("", index)]

application = get_wsgi_application()
