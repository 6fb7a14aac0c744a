"""One settings object, read once at the edge (CLI, app start) and passed down.

Every field can be overridden by an environment variable ``CHURN_<FIELD>`` (e.g.
``CHURN_HORIZON_DAYS``) or a ``.env`` file. Library functions never read settings themselves:
they take explicit arguments.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Paths, horizons, thresholds and keys of one deployment."""

    model_config = SettingsConfigDict(env_prefix="CHURN_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data/demo"), description="Folder of contract tables.")
    features_path: Path = Field(
        Path("data/features/labeled.parquet"), description="Labeled training set."
    )
    store_dir: Path = Field(
        Path("data/store"), description="Feature snapshot and score store read by serving."
    )
    horizon_days: int = Field(90, gt=0, description="Churn within this many days after as_of.")
    lead_days: int = Field(0, ge=0, description="Days between as_of and the start of the horizon.")
    resubscribe_gap_days: int = Field(
        7, ge=0, description="A new subscription within this gap is a renewal, not churn."
    )
    seed: int = 42
    mlflow_tracking_uri: str = Field(
        "sqlite:///mlruns/mlflow.db", description="MLflow store; MLFLOW_TRACKING_URI overrides."
    )
    mlflow_artifact_root: Path = Path("mlruns/artifacts")
    model_name: str = "churn-model"
    api_keys: str = Field("demo-key", description="Comma-separated API keys (CHURN_API_KEYS).")

    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]
