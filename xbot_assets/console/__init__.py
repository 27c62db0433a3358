"""The operator console: queue, approval, brake and learning in one small web app.

Starlette + jinja2, plain HTML forms (no front-end build). Every action is audited with who did
it; see :mod:`xbot_assets.console.app` for the routes and :mod:`xbot_assets.console.auth` for
tokens, sessions and CSRF.
"""
