from late_pkg import IMPORTED

IMPORTED.append("views")


def index(request):
    page = "old " + request
    return page


import late_pkg.models  # noqa: E402  (an import while views is half done)


def after_models(x):
    return late_pkg.models.save(x)
