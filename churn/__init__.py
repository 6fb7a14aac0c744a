"""The `churn` command and the one settings object.

The library lives in features/, training/ and serving/; this package only wires it.
"""
