"""Serving: text-in/text-out SavedModels for TF Serving (see ``export``)."""

from kerazoo.serving.exporter import export

__all__ = ["export"]
