"""A Django view answering the callback protocol (as in Celery's docs).

Route it in urls.py:  path("multiply", views.multiply)
"""

import json

from django.http import HttpResponse


def multiply(request):
    args = request.POST if request.method == "POST" else request.GET
    try:
        response = {"status": "success", "retval": int(args["x"]) * int(args["y"])}
    except (KeyError, ValueError) as exc:
        response = {"status": "failure", "reason": f"bad arguments: {exc}"}
    return HttpResponse(json.dumps(response), content_type="application/json")
