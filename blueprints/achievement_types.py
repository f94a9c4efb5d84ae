from sanic import Blueprint

bp = Blueprint("achievement_types", url_prefix="/achievement-types")
