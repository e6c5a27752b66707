"""The console's front page and navigation: what each role can open."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from ivr.vocabulary import ROLES

bp = Blueprint("console_home", __name__)

@dataclass(frozen=True)
class NavItem:
    """One link in the console's navigation bar."""

    endpoint: str
    label: str
    roles: tuple[str, ...]


def add_nav(app: Flask, endpoint: str, label: str, roles: tuple[str, ...] = ROLES) -> None:
    """Show a link to `endpoint` to users with one of `roles` (called by the app factory)."""
    app.extensions.setdefault("ivr_nav", []).append(NavItem(endpoint, label, tuple(roles)))


def nav_for(role: str | None) -> list[NavItem]:
    """The links a user with `role` sees."""
    return [item for item in current_app.extensions.get("ivr_nav", []) if role in item.roles]


def _template_globals() -> dict[str, Any]:
    role = current_user.role if current_user.is_authenticated else None
    return {"nav": nav_for(role)}


@bp.get("/")
@login_required
def home() -> ResponseReturnValue:
    """The front page: the user's own links, with a word on each."""
    return render_template("home.html", links=nav_for(current_user.role))


def init_home(app: Flask) -> None:
    """Register the front page and the navigation for every template."""
    app.register_blueprint(bp)
    app.context_processor(_template_globals)
