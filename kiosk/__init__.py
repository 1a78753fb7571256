"""The booth terminal application. It never imports :mod:`server`; both import :mod:`protocol`."""
