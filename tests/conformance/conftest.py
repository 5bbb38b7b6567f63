"""Conformance tests: one suite (suite.py) inherited by every connector's test module."""
