"""Settings: the one reader of the ``CVA_*`` environment variables.

Every entry point (a DAG task, the ``cva`` command, a test) builds one
:class:`Settings` with :meth:`Settings.from_env` and passes the values it needs
down; models and pure functions take plain arguments and never read the
environment. A value that does not parse is refused here, with the variable, the
value and what was expected, before any work starts.

``cva config`` prints every setting with its variable, default and current value;
the README's configuration table is :func:`markdown_table` (a test keeps the two
equal).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cva_tasks.lake import Lake

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RFM_RULES = Path(__file__).resolve().parent / "config" / "rfm_segments.yaml"
DEFAULT_AUDIENCES = Path(__file__).resolve().parent / "config" / "audiences.yaml"
ENV_PREFIX = "CVA_"


class SettingsError(ValueError):
    """A ``CVA_*`` variable holds a value that cannot be used."""


# --- parsers: text of one variable -> typed value; errors name the variable ---------


def _number(text: str, env: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(f"{env}: {text!r} is not {what}") from None


def _positive_int(text: str, env: str) -> int:
    value = _number(text, env, int)
    if value < 1:
        raise SettingsError(f"{env}: {value} must be at least 1")
    return value


#: More parts than this only adds per-task overhead (each part reads the day's features).
MAX_SCORE_SHARDS = 64


def _shard_count(text: str, env: str) -> int:
    value = _positive_int(text, env)
    if value > MAX_SCORE_SHARDS:
        raise SettingsError(f"{env}: {value} is more than {MAX_SCORE_SHARDS} parts")
    return value


def _share(text: str, env: str) -> float:
    value = _number(text, env, float)
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"{env}: {value} must be a share in [0, 1]")
    return value


def _non_negative(text: str, env: str) -> float:
    value = _number(text, env, float)
    if value < 0:
        raise SettingsError(f"{env}: {value} must not be negative")
    return value


def _hours(text: str, env: str) -> int:
    value = _number(text, env, int)
    if value < 0:
        raise SettingsError(f"{env}: {value} must not be negative (hours)")
    return value


def _timezone(text: str, env: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(f"{env}: {text!r} is not an IANA time zone (Europe/London)") from exc
    return text


def _names(text: str, env: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _path(text: str, env: str) -> Path:
    return Path(text).expanduser()


def _text(text: str, env: str) -> str:
    return text


def _json_object(text: str, env: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"{env}: {text!r} is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{env}: {text!r} is not a JSON object of keyword arguments")
    return value


def parse_pair(text: str, where: str) -> tuple[float, float]:
    """``"low,high"`` as two numbers; the error names ``where``."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SettingsError(f"{where}: {text!r} is not two comma-separated numbers") from None
    if len(values) != 2:
        raise SettingsError(f"{where}: {text!r} is not two comma-separated numbers")
    return values[0], values[1]


def check_tier_cutoffs(values: tuple[float, float], where: str) -> tuple[float, float]:
    if not 0.0 < values[0] < values[1] < 1.0:
        raise SettingsError(
            f"{where}: need two increasing probabilities strictly between 0 and 1, got {values!r}"
        )
    return values


def _tier_cutoffs(text: str, env: str) -> tuple[float, float]:
    return check_tier_cutoffs(parse_pair(text, env), env)


def _neutral_band(text: str, env: str) -> tuple[float, float]:
    try:
        low, high = parse_pair(text, env)
    except SettingsError:
        raise SettingsError(
            f"{env}={text!r}: expected two numbers 'low,high', e.g. '0.4,0.6'"
        ) from None
    if not 0.0 <= low <= high <= 1.0:
        raise SettingsError(f"{env}={text!r}: needs 0 <= low <= high <= 1")
    return low, high


def _k_range(text: str, env: str) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in text.split(","))
    except ValueError:
        raise SettingsError(f"{env}: {text!r} is not two whole numbers 'min,max'") from None
    if not 2 <= low <= high:
        raise SettingsError(f"{env}: {text!r} needs 2 <= min <= max")
    return low, high


def _discount_rate(text: str, env: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise SettingsError(f"{env}: {text!r} is not a number (annual rate, e.g. 0.10)") from None
    if not 0.0 <= rate <= 1.0:
        raise SettingsError(f"{env}: {rate} is not an annual rate in [0, 1] (e.g. 0.10)")
    return rate


#: The shortest pseudonymisation key accepted: a short key could be found by trying.
MIN_SECRET_CHARS = 16


def _secret(text: str, env: str) -> str | None:
    """A secret: never echoed, not even in the error about it."""
    if not text:
        return None
    if len(text) < MIN_SECRET_CHARS:
        raise SettingsError(
            f"{env}: the key is {len(text)} characters long; use at least {MIN_SECRET_CHARS} "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return text


def _setting(
    env: str, parse: Callable[[str, str], Any], default: str, doc: str, *, secret: bool = False
) -> Any:
    """A settings field: its variable, parser, default (as the text a user would write).

    A ``secret`` is left out of the settings' repr (so of tracebacks and logs) and
    ``cva config`` shows only whether it is set.
    """
    return field(
        repr=not secret,
        metadata={"env": env, "parse": parse, "default": default, "doc": doc, "secret": secret},
    )


def _per_kind_env(env: str, kind: str) -> str:
    return f"{env}_{kind.upper()}"


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one process (see the README's configuration table)."""

    home: Path = _setting(
        "CVA_HOME", _path, "./.cva", "local folder of the embedded default (demo, lake, warehouse)"
    )
    data_root: str = _setting(
        "CVA_DATA_ROOT",
        _text,
        "<CVA_HOME>/lake",
        "the lake: a folder or any fsspec URI (s3://bucket/cva, gs://..., memory://)",
    )
    expectations_dir: Path = _setting(
        "CVA_EXPECTATIONS_DIR",
        _path,
        "<project>/expectations",
        "folder of the Great Expectations suites (JSON)",
    )
    cache_dir: Path = _setting(
        "CVA_CACHE_DIR",
        _path,
        "~/.cache/cva",
        "derived data of the evaluations (safe to delete)",
    )
    max_failing_share: float = _setting(
        "CVA_MAX_FAILING_SHARE",
        _share,
        "0.05",
        "share of a source entity's rows that may break row-level rules before the run fails; "
        "per source: the source's `max_failing_share`, or `CVA_MAX_FAILING_SHARE_<SOURCE>`",
    )
    row_count_history_days: int = _setting(
        "CVA_ROW_COUNT_HISTORY_DAYS",
        _positive_int,
        "7",
        "earlier landed days the row-count rule compares with",
    )
    extract_lookback_hours: int = _setting(
        "CVA_EXTRACT_LOOKBACK_HOURS",
        _hours,
        "24",
        "hours before its day a source run reads again for rows that arrived late (rows "
        "already landed are skipped); per source CVA_EXTRACT_LOOKBACK_HOURS_<SOURCE>",
    )
    source_modules: tuple[str, ...] = _setting(
        "CVA_SOURCE_MODULES",
        _names,
        "",
        "extra source modules (comma-separated dotted paths) besides cva_tasks/sources",
    )
    pipeline_sources: tuple[str, ...] = _setting(
        "CVA_PIPELINE_SOURCES",
        _names,
        "",
        "sources feeding the daily pipeline (comma-separated); empty: every active source",
    )
    sensor_poke_seconds: int = _setting(
        "CVA_SENSOR_POKE_SECONDS",
        _positive_int,
        "600",
        "seconds between two checks of a source sensor (read when the DAG is parsed)",
    )
    sensor_timeout_hours: int = _setting(
        "CVA_SENSOR_TIMEOUT_HOURS",
        _positive_int,
        "6",
        "hours a source sensor waits for its day before it fails and alerts (read when the "
        "DAG is parsed)",
    )
    dagrun_timeout_hours: int = _setting(
        "CVA_DAGRUN_TIMEOUT_HOURS",
        _positive_int,
        "24",
        "hours a run of any cva DAG may take before Airflow fails it (and it alerts)",
    )
    owner: str = _setting(
        "CVA_OWNER", _text, "data-engineering", "the owner shown on every cva DAG and task"
    )
    alert_webhook_url: str = _setting(
        "CVA_ALERT_WEBHOOK_URL",
        _text,
        "",
        "URL a failed task or a timed-out run POSTs a JSON alert to; empty: no webhook",
    )
    alert_notifier: str = _setting(
        "CVA_ALERT_NOTIFIER",
        _text,
        "",
        "dotted path of an Airflow BaseNotifier class called on the same failures (e.g. "
        "airflow.providers.slack.notifications.slack.SlackNotifier); empty: none",
    )
    alert_notifier_args: Mapping[str, Any] = _setting(
        "CVA_ALERT_NOTIFIER_ARGS",
        _json_object,
        "{}",
        "the notifier's keyword arguments, a JSON object",
    )
    rfm_rules: Path = _setting(
        "CVA_RFM_RULES",
        _path,
        "cva_tasks/config/rfm_segments.yaml",
        "the RFM segment rule table",
    )
    audiences: Path = _setting(
        "CVA_AUDIENCES",
        _path,
        "cva_tasks/config/audiences.yaml",
        "the named audiences published every day (definitions file)",
    )
    models: tuple[str, ...] = _setting(
        "CVA_MODELS",
        _names,
        "clv,clusters,churn,recommender,sentiment",
        "model kinds the pipeline trains (comma-separated; empty: none)",
    )
    train_every_days: int = _setting(
        "CVA_TRAIN_EVERY_DAYS",
        _positive_int,
        "7",
        "days between two trainings of a model kind; per kind CVA_TRAIN_EVERY_DAYS_<KIND>",
    )
    promotion_tolerance: float = _setting(
        "CVA_PROMOTION_TOLERANCE",
        _non_negative,
        "0.005",
        "how much worse (absolute, in the kind's metric) a new model may be and still replace "
        "the champion; per kind CVA_PROMOTION_TOLERANCE_<KIND>",
    )
    cluster_k_range: tuple[int, int] = _setting(
        "CVA_CLUSTER_K_RANGE", _k_range, "3,8", "the numbers of clusters tried (min,max)"
    )
    churn_horizon_days: int = _setting(
        "CVA_CHURN_HORIZON_DAYS",
        _positive_int,
        "90",
        "a customer churns without a counted order in this many days",
    )
    churn_psi_threshold: float = _setting(
        "CVA_CHURN_PSI_THRESHOLD",
        _non_negative,
        "0.2",
        "population stability index of a key feature that retrains churn early",
    )
    churn_tier_cutoffs: tuple[float, float] = _setting(
        "CVA_CHURN_TIER_CUTOFFS",
        _tier_cutoffs,
        "0.33,0.66",
        "churn probabilities where the Medium and High tiers start",
    )
    clv_discount_rate: float = _setting(
        "CVA_CLV_DISCOUNT_RATE",
        _discount_rate,
        "0.10",
        "annual discount rate of the 365-day CLV",
    )
    recommend_active_days: int = _setting(
        "CVA_RECOMMEND_ACTIVE_DAYS",
        _positive_int,
        "365",
        "customers with an order in this many days get recommendations",
    )
    score_shards: int = _setting(
        "CVA_SCORE_SHARDS",
        _shard_count,
        "1",
        "parts the daily `score` and `recommend` split the customers into (mapped tasks, "
        "one per part: N workers share a day); set it alike for the DAG processor and "
        "every worker",
    )
    sentiment_neutral_band: tuple[float, float] = _setting(
        "CVA_SENTIMENT_NEUTRAL_BAND",
        _neutral_band,
        "0.4,0.6",
        "probabilities of positive feedback labelled neutral (low,high)",
    )
    sentiment_max_train_texts: int = _setting(
        "CVA_SENTIMENT_MAX_TRAIN_TEXTS",
        _positive_int,
        "100000",
        "rated texts the sentiment model trains on at most (a seeded random sample of the "
        "training part when there are more; validation uses every held-out text)",
    )
    tf_threads: int = _setting(
        "CVA_TF_THREADS",
        _positive_int,
        "min(2, CPUs)",
        "TensorFlow's intra-op threads",
    )
    bench_pg_dsn: str = _setting(
        "CVA_BENCH_PG_DSN",
        _text,
        "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
        "the PostgreSQL `cva bench load` uses",
    )
    pseudonymise_key: str | None = _setting(
        "CVA_PSEUDONYMISE_KEY",
        _secret,
        "",
        "secret key (16+ chars): customer ids from staging on are its keyed hash "
        "(HMAC-SHA256); raw keeps the source's ids; never printed",
        secret=True,
    )
    train_every_days_by_kind: Mapping[str, int] = field(default_factory=dict)
    promotion_tolerance_by_kind: Mapping[str, float] = field(default_factory=dict)
    extract_lookback_hours_by_source: Mapping[str, int] = field(default_factory=dict)
    max_failing_share_by_source: Mapping[str, float] = field(default_factory=dict)
    timezone_by_source: Mapping[str, str] = field(default_factory=dict)
    # repr=False: it holds every CVA_* variable, secrets included.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``CVA_*`` variable of ``environ`` (default: the process's).

        Raises:
            SettingsError: naming the variable whose value cannot be used.
        """
        from cva_tasks.models.kinds import KIND_NAMES

        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for spec in setting_fields():
            name, meta = spec.name, spec.metadata
            text = env.get(meta["env"])
            if text is not None and (text.strip() or meta["parse"] is _names):
                values[name] = meta["parse"](text.strip(), meta["env"])
            elif name not in _COMPUTED_DEFAULTS:
                values[name] = meta["parse"](meta["default"], meta["env"])
        home = Path(values.get("home") or Path.cwd() / ".cva").resolve()
        values["home"] = home
        values["data_root"] = str(values.get("data_root") or home / "lake").rstrip("/")
        values.setdefault("expectations_dir", PROJECT_ROOT / "expectations")
        values.setdefault("cache_dir", Path.home() / ".cache" / "cva")
        values.setdefault("rfm_rules", DEFAULT_RFM_RULES)
        values.setdefault("audiences", DEFAULT_AUDIENCES)
        values.setdefault("tf_threads", min(2, os.cpu_count() or 1))
        models = values["models"]
        unknown = sorted(set(models) - set(KIND_NAMES))
        if unknown:
            raise SettingsError(
                f"CVA_MODELS names unknown model kind(s) {unknown}; known: {KIND_NAMES}"
            )
        values["models"] = tuple(models)
        values["train_every_days_by_kind"] = {
            kind: _positive_int(env[key], key)
            for kind in KIND_NAMES
            if (key := _per_kind_env("CVA_TRAIN_EVERY_DAYS", kind)) in env and env[key].strip()
        }
        values["promotion_tolerance_by_kind"] = {
            kind: _non_negative(env[key], key)
            for kind in KIND_NAMES
            if (key := _per_kind_env("CVA_PROMOTION_TOLERANCE", kind)) in env and env[key].strip()
        }
        lookback_prefix = "CVA_EXTRACT_LOOKBACK_HOURS_"
        values["extract_lookback_hours_by_source"] = {
            key[len(lookback_prefix) :].lower(): _hours(text.strip(), key)
            for key, text in env.items()
            if key.startswith(lookback_prefix) and text.strip()
        }
        share_prefix = "CVA_MAX_FAILING_SHARE_"
        values["max_failing_share_by_source"] = {
            key[len(share_prefix) :].lower(): _share(text.strip(), key)
            for key, text in env.items()
            if key.startswith(share_prefix) and text.strip()
        }
        zone_prefix = "CVA_SOURCE_TIMEZONE_"
        values["timezone_by_source"] = {
            key[len(zone_prefix) :].lower(): _timezone(text.strip(), key)
            for key, text in env.items()
            if key.startswith(zone_prefix) and text.strip()
        }
        values["environ"] = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
        return cls(**values)

    @property
    def demo_dir(self) -> Path:
        return self.home / "demo"

    @property
    def data_docs_dir(self) -> Path:
        """Great Expectations' Data Docs, one site per source (``<source>/index.html``)."""
        return self.home / "data_docs"

    @property
    def lake(self) -> Lake:
        return Lake(self.data_root)

    @property
    def model_cache_dir(self) -> Path:
        """Local copies of models kept in a remote lake."""
        return self.home / "model_cache"

    def train_every_days_for(self, kind: str) -> int:
        return self.train_every_days_by_kind.get(kind, self.train_every_days)

    def promotion_tolerance_for(self, kind: str) -> float:
        return self.promotion_tolerance_by_kind.get(kind, self.promotion_tolerance)

    def extract_lookback_hours_for(self, source: str, declared: int | None = None) -> int:
        """The lookback of ``source``: its own variable, else what the source declares,
        else ``CVA_EXTRACT_LOOKBACK_HOURS``."""
        if source in self.extract_lookback_hours_by_source:
            return self.extract_lookback_hours_by_source[source]
        return self.extract_lookback_hours if declared is None else declared

    def max_failing_share_for(self, source: str, declared: float | None = None) -> float:
        """The failing share of ``source``: ``CVA_MAX_FAILING_SHARE_<SOURCE>``, else what
        the source declares, else ``CVA_MAX_FAILING_SHARE``."""
        if source in self.max_failing_share_by_source:
            return self.max_failing_share_by_source[source]
        return self.max_failing_share if declared is None else declared

    def timezone_for(self, source: str, declared: str = "UTC") -> str:
        """The zone of ``source``'s timestamps without an offset:
        ``CVA_SOURCE_TIMEZONE_<SOURCE>``, else what the source declares."""
        return self.timezone_by_source.get(source, declared)

    def variable(self, name: str) -> str | None:
        """A ``CVA_*`` variable declared elsewhere (a source's location), or None when unset."""
        if not name.startswith(ENV_PREFIX):
            raise ValueError(f"{name}: only CVA_* variables are settings")
        value = self.environ.get(name, "").strip()
        return value or None

    def resolve_location(self, value: str) -> str:
        """A source location: URIs and absolute paths as they are, ``{project}`` expanded,
        anything else relative to ``CVA_HOME``."""
        if "://" in value or os.path.isabs(value):
            return value
        value = value.replace("{project}", str(PROJECT_ROOT))
        if os.path.isabs(value):
            return value
        return str(self.home / value)


#: Settings whose default depends on other values or on the machine (set in from_env).
_COMPUTED_DEFAULTS = frozenset(
    {
        "home",
        "data_root",
        "expectations_dir",
        "cache_dir",
        "rfm_rules",
        "audiences",
        "tf_threads",
    }
)


def setting_fields() -> list[Any]:
    """The fields of :class:`Settings` that a variable sets, in table order."""
    return [f for f in fields(Settings) if "env" in f.metadata]


def markdown_table() -> str:
    """The README's configuration table: variable, default, meaning."""
    lines = ["| variable | default | what it sets |", "|---|---|---|"]
    for spec in setting_fields():
        meta = spec.metadata
        default = f"`{meta['default']}`" if meta["default"] else "(empty)"
        lines.append(f"| `{meta['env']}` | {default} | {meta['doc']} |")
    return "\n".join(lines)
