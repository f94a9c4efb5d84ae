"""HTTP entrypoints: thin handlers, one blueprint per area, grouped under /api/v1."""

from sanic import Blueprint

from blueprints.achievement_types import bp as achievement_types
from blueprints.achievements import bp as achievements
from blueprints.admin import bp as admin
from blueprints.auth import bp as auth
from blueprints.credentials import achievement_credentials, well_known
from blueprints.portfolio import public, share_links
from blueprints.scoring import levels, results, scoring_bp
from blueprints.system import bp as system
from blueprints.university import org_units, review_queue

api = Blueprint.group(auth, achievements, achievement_types, admin, org_units, review_queue,
                       share_links, public, achievement_credentials, levels, results,
                       scoring_bp, url_prefix="/api/v1")

__all__ = ["api", "system", "well_known"]
