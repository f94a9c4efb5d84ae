from sanic import Blueprint

bp = Blueprint("admin", url_prefix="/admin")
