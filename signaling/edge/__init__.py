"""The edge: where clients reach Tandem. The socket.io server and its frame guards
(``socketserver``), the handshake and dispatch (``sockets``), per-role event handlers
(``handlers``), the REST API (``rest``, ``openapi``, ``http_errors``) and the web files
(``webfiles``). Everything here validates, calls inward, and answers; nothing decides."""
