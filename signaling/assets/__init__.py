"""The co-browse asset route: signed tokens (``tokens``), the guarded fetcher (``fetch``), the
shared cache (``cache``) and the service behind ``GET /cobrowse/assets/{token}`` (``service``)."""
