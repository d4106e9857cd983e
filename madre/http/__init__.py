"""Madre's HTTP front end."""

from madre.http.app import create_app

__all__ = ["create_app"]
