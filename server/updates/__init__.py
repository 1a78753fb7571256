"""Booth updates over the air: signed RAUC bundles checked on upload, and rollouts in stages
(see docs/architecture.md, "Booth updates")."""

from .bundle import BundleFacts, check_bundle, sha256_of
from .errors import BundleError, UpdateError

__all__ = ["BundleError", "BundleFacts", "UpdateError", "check_bundle", "sha256_of"]
