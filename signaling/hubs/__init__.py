"""Live media and co-browse wired into sessions: ``calls`` (one media room per ticket, captures
and uploads) and ``cobrowse`` (consent, the sanitized relay, the mirror, remote control)."""
