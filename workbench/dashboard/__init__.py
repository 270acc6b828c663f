"""Partner and school-leader dashboards: Voila over the release store, read-only, per viewer.

`access` decides who sees what (pure), `content` reads a release's artifacts for display (pure),
`view` is the widget layer the dashboard notebook calls, and `server` runs Voila with sign-in,
per-viewer checks, download links and kernel guards.
"""
