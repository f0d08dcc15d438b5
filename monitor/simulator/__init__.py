"""Faithful fake platform servers (Graph API, forums) used by the demo and the tests."""
