"""Keeps the fuzz run from locking itself out.

Schemathesis reuses ids it has seen in responses (GET /account/me, GET /admin/users,
GET /account/sessions) as path parameters. Sooner or later it disables, deletes or
revokes the sessions of the admin whose token drives the run, deletes that token's own
session, or deletes the client it was issued to (or rotates its secret, which the /oauth/*
calls authenticate with), and every later request is a 401 that tests nothing. Requests
aimed at those three ids go to an id that does not exist instead; every other id, real ones
included, is kept.
"""

import os

import schemathesis

PROTECTED = {os.environ["ST_ADMIN_ID"], os.environ["ST_ADMIN_SID"], os.environ["ST_CLIENT_ID"]}


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if params and params.get("id") in PROTECTED:
        params["id"] = "00000000-0000-0000-0000-000000000000"
