"""The booth's old import path: :mod:`kiosk.booth` is where it lives now."""

from kiosk.booth import LIGHTS, Booth, BoothStatus

__all__ = ["LIGHTS", "Booth", "BoothStatus"]
