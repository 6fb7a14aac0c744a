"""The `churn` command and the one settings object; the library lives in features/, training/, serving/."""
