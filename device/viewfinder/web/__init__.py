"""The web viewfinder: a small stdlib HTTP server with an MJPEG stream, status and controls.

Built on ``http.server.ThreadingHTTPServer`` on purpose: it is in the Pi's apt Python (no
extra dependency next to picamera2's system packages), and MJPEG needs nothing more than a
blocking write loop per client thread.
"""
