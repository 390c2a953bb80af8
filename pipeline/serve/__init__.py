"""`ferflow serve`: a web page for the camera and photos, and an HTTP API, on one recognizer.

It runs the same engine as `ferflow predict` and `ferflow live` (`pipeline.app.recognizer`)
and answers in their record format (`pipeline.app.records`). Modules, bottom up: `uploads`
(bytes -> frame, with size limits checked before decoding), `security` (who may call the
server and for how long), `engine` (recognizers on worker threads), `schemas` (the JSON
shapes), `stream` (the WebSocket), `guard` (the middlewares enforcing `security`), `app`
(routes, errors), `server` (uvicorn), `cli` (the command's options). The page is `static/`:
plain HTML, one ES module and CSS, no build step, nothing fetched from elsewhere.
"""
