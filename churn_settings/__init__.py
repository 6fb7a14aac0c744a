"""The one settings object of a deployment, at the bottom of the dependency graph.

It imports nothing of ours, so ``features``, ``training``, ``serving`` and the ``churn`` command
all read the same object without a package cycle. It is read once at the edge (the CLI, the app
start, a notebook's first cell) and passed down; library functions take explicit arguments.

Every field can be overridden by an environment variable ``CHURN_<FIELD>`` (e.g.
``CHURN_HORIZON_DAYS``) or a ``.env`` file. Nested sections use ``__``: the workflow section's
``rules_path`` is ``CHURN_WORKFLOWS__RULES_PATH``; the names it had before it became a section
(``CHURN_RULES_PATH``, ``CHURN_WORKFLOWS_DB``, ``CHURN_SCORE_HISTORY``,
``CHURN_TASK_CAPACITY``) keep working. The MLflow store follows one precedence,
:func:`resolve_tracking_uri`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
ENV_PREFIX = "CHURN_"


def resolve_tracking_uri(configured: str | None = None) -> str:
    """The MLflow store: ``configured`` (``CHURN_MLFLOW_TRACKING_URI``) wins, then
    ``MLFLOW_TRACKING_URI``, then the embedded ``sqlite:///mlruns/mlflow.db``.

    :class:`Settings` resolves it once when it is read: MLflow rewrites ``MLFLOW_TRACKING_URI``
    whenever code in the process calls ``mlflow.set_tracking_uri``, so reading it later could
    name another store than the one the deployment was started with.
    """
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


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


class WorkflowPaths(BaseModel):
    """Where the rules, the workflow database and the score history live, and how many open
    tasks one owner gets (``Settings.workflows``; ``CHURN_WORKFLOWS__RULES_PATH`` or
    ``CHURN_RULES_PATH``, and so on)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules_path: Path = Field(Path("rules.yaml"), description="Retention rules (rules.yaml).")
    workflows_db: Path | None = Field(
        None, description="Alerts, actions and outcomes (SQLite); unset: <store_dir>/workflows.db."
    )
    score_history: Path | None = Field(
        None, description="Score history the rules read; unset: <store_dir>/history."
    )
    task_capacity: int | None = Field(
        25,
        ge=1,
        description="Open tasks per owner (CSM) a rule run fills up to, highest revenue at "
        "risk first; more wait for a later run (CHURN_WORKFLOWS__TASK_CAPACITY or "
        "CHURN_TASK_CAPACITY; `none` for no limit).",
    )

    @field_validator("task_capacity", mode="before")
    @classmethod
    def _no_limit(cls, value: object) -> object:
        """An environment variable cannot say None: ``none`` (or empty) means no limit."""
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        return value


RETRAIN_REASONS = ("realised_auc", "estimated_auc", "drift", "age")


class MonitoringSettings(BaseModel):
    """How strict ``churn monitor`` is and what makes ``churn retrain`` retrain
    (``Settings.monitoring``; ``CHURN_MONITORING__ALPHA``, ``CHURN_MONITORING__RETRAIN_ON``, ...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(
        0.02,
        gt=0,
        lt=1,
        description="False-alarm rate of one `churn monitor` run (drift and model outputs; "
        "freshness has its own 1 %). Below the 5 % a reader might expect: a nightly run at 5 % "
        "pages for nothing about once every three weeks.",
    )
    min_share: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Share of the model's explanation (mean |SHAP|) below which a drifting "
        "feature is reported but does not alarm.",
    )
    retrain_on: Annotated[tuple[str, ...], NoDecode] = Field(
        RETRAIN_REASONS,
        description="What makes `churn retrain` retrain: any of realised_auc, estimated_auc, "
        "drift, age (comma-separated in the environment).",
    )
    retrain_max_age_days: int = Field(
        365, ge=0, description="Retrain when the model's data is older than this (0 = never)."
    )

    @field_validator("retrain_on", mode="before")
    @classmethod
    def _reasons(cls, value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        reasons = tuple(str(r).strip() for r in items if str(r).strip())
        unknown = sorted(set(reasons) - set(RETRAIN_REASONS))
        if unknown:
            raise ValueError(
                f"unknown retrain reason(s) {', '.join(unknown)}: use "
                f"{', '.join(RETRAIN_REASONS)} (comma-separated)."
            )
        return reasons


class _FlatWorkflowNames(PydanticBaseSettingsSource):
    """``CHURN_RULES_PATH``, ``CHURN_WORKFLOWS_DB``, ``CHURN_SCORE_HISTORY``,
    ``CHURN_TASK_CAPACITY``: the workflow section's variables under the names they had before it
    was a section, so deployments that set them keep working. Below the nested names
    (``CHURN_WORKFLOWS__...``) in precedence."""

    def __init__(self, settings_cls: type[BaseSettings], *sources: EnvSettingsSource) -> None:
        super().__init__(settings_cls)
        self.sources = sources  # highest precedence first: the environment, then .env

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name in WorkflowPaths.model_fields:
            key = f"{ENV_PREFIX}{name}".lower()  # the sources hold lower-case names
            value = next((s.env_vars[key] for s in self.sources if s.env_vars.get(key)), None)
            if value is not None:
                found[name] = value
        return {"workflows": found} if found else {}


class Settings(BaseSettings):
    """Paths, horizons, thresholds and keys of one deployment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        flat = [s for s in (env_settings, dotenv_settings) if isinstance(s, EnvSettingsSource)]
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _FlatWorkflowNames(settings_cls, *flat),
            file_secret_settings,
        )

    data_dir: Path = Field(Path("data/demo"), description="Folder of contract tables.")
    features_path: Path = Field(
        Path("data/features/labeled.parquet"), description="Labeled training set."
    )
    store_dir: Path = Field(
        Path("data/store"), description="Feature snapshot and score store read by serving."
    )
    duckdb_memory_limit: str = Field(
        "1GB",
        pattern=r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$",
        description="Most memory DuckDB may hold while `churn features` and `churn snapshot` "
        "build (CHURN_DUCKDB_MEMORY_LIMIT, e.g. 4GB); past it, sorts, joins and aggregates "
        "spill to duckdb_temp_directory. The build runs in customer buckets sized to half of "
        "it (features.buckets), so a larger limit buys little time: 1GB builds 50 000 "
        "customers as fast as 4GB, in a third of the memory (docs/scale.md).",
    )
    duckdb_temp_directory: Path | None = Field(
        None,
        description="Where DuckDB spills what exceeds duckdb_memory_limit "
        "(CHURN_DUCKDB_TEMP_DIRECTORY); unset: <store_dir>/duckdb-spill. Needs ample free "
        "disk: tens of GB at 100 M events (docs/scale.md).",
    )
    duckdb_threads: int = Field(
        0, ge=0, description="DuckDB threads of the feature build (0 = all cores)."
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
    mlflow_tracking_uri: str = Field(
        "",
        validate_default=True,
        description="MLflow store; unset: MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db "
        "(resolve_tracking_uri).",
    )
    mlflow_artifact_root: Path | None = Field(
        None,
        description="Folder of the MLflow experiment's artifacts, set when the store creates "
        "the experiment (CHURN_MLFLOW_ARTIFACT_ROOT); unset: the existing experiment's folder, "
        "or mlruns/artifacts for a new store.",
    )
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
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Interface `churn serve` binds (CHURN_HOST); another than loopback needs "
        "own API keys and a session secret.",
    )
    port: int = Field(8000, ge=1, le=65535, description="TCP port of `churn serve` (CHURN_PORT).")
    model_alias: str = Field("champion", description="Registry alias the API serves.")
    playbook_path: Path = Field(
        Path("playbook.yaml"), description="Intervention matrix: tier and driver group -> action."
    )
    top_k: int = Field(5, ge=0, le=100, description="Drivers per result unless ?k= says otherwise.")
    gross_margin: float = Field(
        0.8, ge=0, le=1, description="Gross margin of revenue, for the expected LTV."
    )
    annual_discount_rate: float = Field(
        0.10, gt=-1, description="Yearly discount rate of the expected LTV's future months."
    )
    currency: str | None = Field(
        None,
        pattern=r"^[A-Za-z]{3}$",
        description="ISO 4217 code of every amount (MRR, revenue at risk, LTV) in the API, the "
        "UI and CSV exports (CHURN_CURRENCY); unset: the imported export's currency "
        "(import.json), else USD. Amounts are never converted, only labelled.",
    )
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

    # ----- workflows (rules.yaml, alerts, score history) -----
    workflows: WorkflowPaths = Field(default_factory=WorkflowPaths)
    # ----- monitoring and retraining (`churn monitor`, `churn retrain`, /v1/monitoring) -----
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    @field_validator("mlflow_tracking_uri", mode="before")
    @classmethod
    def _tracking_uri(cls, value: str | None) -> str:
        return resolve_tracking_uri(value)

    @property
    def duckdb_spill_path(self) -> Path:
        """Where the feature build spills: the setting, else ``<store_dir>/duckdb-spill``."""
        return self.duckdb_temp_directory or self.store_dir / "duckdb-spill"

    def model_name_for(self, origin: str) -> str:
        """The registered model a labeled set of ``origin`` trains: one name per export, so a
        model of another export never becomes the champion serving this one."""
        if "model_name" in self.model_fields_set or origin == "export":
            return self.model_name
        return f"{self.model_name}-{origin}"

    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    def currency_code(self) -> str:
        """The currency amounts are labelled with: ``currency``, else the one the data folder's
        import manifest states, else USD."""
        if self.currency:
            return self.currency.upper()
        manifest = self.data_dir / "import.json"
        try:
            stated = json.loads(manifest.read_text(encoding="utf-8")).get("currency")
        except (OSError, ValueError, AttributeError):
            stated = None
        return str(stated).upper() if isinstance(stated, str) and stated else "USD"

    @property
    def snapshot_path(self) -> Path:
        """Latest feature snapshot (``churn snapshot``)."""
        return self.store_dir / "snapshot.parquet"

    @property
    def score_store_path(self) -> Path:
        """Precomputed scores of the snapshot (``churn score-all``)."""
        return self.store_dir / "scores.parquet"

    @property
    def workflows_db_path(self) -> Path:
        """The workflow ledger: alerts, actions, interventions, outcomes."""
        return self.workflows.workflows_db or self.store_dir / "workflows.db"

    @property
    def users_db_path(self) -> Path:
        """UI users (argon2 password hashes) and named API keys with scopes (SQLite)."""
        return self.store_dir / "users.db"

    @property
    def score_history_path(self) -> Path:
        """The score history (a Parquet file or folder) the rules and the closed loop read."""
        return self.workflows.score_history or self.store_dir / "history"
