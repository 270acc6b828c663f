"""Releases: immutable artifact folders with a manifest, and the check that guards them."""
