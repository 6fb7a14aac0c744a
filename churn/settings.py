"""One settings object, read once at the edge (CLI, app start) and passed down.

Every field can be overridden by an environment variable ``CHURN_<FIELD>`` (e.g.
``CHURN_HORIZON_DAYS``) or a ``.env`` file. Library functions never read settings themselves:
they take explicit arguments.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def project_root(start: Path | None = None) -> Path:
    """The checkout's root (the folder holding ``pyproject.toml``) at or above ``start``.

    Relative settings (``mlruns/``, ``data/``) are relative to where ``churn`` runs, the root;
    a notebook running in ``notebooks/`` moves there first so it reads and writes the same
    store as the command line (not a ``notebooks/mlruns`` nobody else sees).
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here


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
    horizon_days: int = Field(
        90, gt=0, description="Churn within this many days after as_of (default of `features`)."
    )
    lead_days: int = Field(
        0, ge=0, description="Days between as_of and the start of the horizon (`features`)."
    )
    resubscribe_gap_days: int = Field(
        7, ge=0, description="A new subscription within this gap is a renewal, not churn."
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow store; default MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db.",
    )
    mlflow_artifact_root: Path = Path("mlruns/artifacts")
    model_name: str = Field(
        "churn-model",
        description="Registered model; unset, an import's models get `churn-model-<importer>`.",
    )
    api_keys: str = Field("demo-key", description="Comma-separated API keys (CHURN_API_KEYS).")
    auth_failures_before_backoff: int = Field(
        5,
        ge=1,
        description="Failed API-key checks or sign-ins one client may make before each "
        "further failure doubles a lock-out (1 s up to 5 min; 429 with Retry-After).",
    )
    api_docs: bool | None = Field(
        None,
        description="Serve /docs, /redoc and /openapi.json (CHURN_API_DOCS); unset: only when "
        "`churn serve` listens on loopback.",
    )
    ui_session_secret: str | None = Field(
        None,
        description="Secret that signs UI session cookies (CHURN_UI_SESSION_SECRET, 32+ "
        "characters); unset: derived from the API keys, allowed on loopback only.",
    )
    # ----- serving -----
    model_alias: str = Field("champion", description="Registry alias the API serves.")
    playbook_path: Path = Field(
        Path("playbook.yaml"), description="Intervention matrix: tier and driver group -> action."
    )
    top_k: int = Field(5, ge=0, le=100, description="Drivers per result unless ?k= says otherwise.")
    batch_limit: int = Field(10_000, gt=0, description="Most items in one POST /score/batch.")
    max_body_bytes: int = Field(
        32_000_000, gt=0, description="Larger request bodies get 413 before they are parsed."
    )
    reload_poll_seconds: float = Field(
        30.0, ge=0, description="How often to check the registry alias and store files; 0 = off."
    )
    scoring_threads: int = Field(
        0, ge=0, description="LightGBM threads for batch scoring (0 = all cores)."
    )
    reload_max_shrink: float = Field(
        0.5,
        ge=0,
        le=1,
        description="A reload or poll that would drop more than this share of the served "
        "customers is refused and the old state keeps serving; a drop to zero always is "
        "(POST /admin/reload?allow_shrink=true overrides both).",
    )
    ready_max_age_days: int = Field(
        0,
        ge=0,
        description="/readyz is not ready when the snapshot's newest as_of is older "
        "than this many days (0 = no limit).",
    )
    # ----- monitoring and retraining -----
    monitor_alpha: float = Field(
        0.05, gt=0, lt=1, description="False-alarm rate of one `churn monitor` run (all checks)."
    )
    monitor_min_share: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Share of the model's explanation (mean |SHAP|) below which a drifting "
        "feature is reported but does not alarm.",
    )
    retrain_on: str = Field(
        "realised_auc,estimated_auc,drift,age",
        description="What makes `churn retrain` retrain (comma-separated).",
    )
    retrain_max_age_days: int = Field(
        365, ge=0, description="Retrain when the model's data is older than this (0 = never)."
    )

    def model_name_for(self, origin: str) -> str:
        """The registered model a labeled set of ``origin`` trains: one name per export, so a
        model of another export never becomes the champion serving this one."""
        if "model_name" in self.model_fields_set or origin == "export":
            return self.model_name
        return f"{self.model_name}-{origin}"

    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def snapshot_path(self) -> Path:
        """Latest feature snapshot (``churn snapshot``)."""
        return self.store_dir / "snapshot.parquet"

    @property
    def score_store_path(self) -> Path:
        """Precomputed scores of the snapshot (``churn score-all``)."""
        return self.store_dir / "scores.parquet"
