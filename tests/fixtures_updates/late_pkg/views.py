from late_pkg import IMPORTED

IMPORTED.append("views")


def index(request):
    page = "old " + request
    return page
