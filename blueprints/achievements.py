from sanic import Blueprint

bp = Blueprint("achievements", url_prefix="/achievements")
