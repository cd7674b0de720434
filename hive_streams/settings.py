"""Every setting hive-streams reads, in one place. Each comes from an environment variable."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = field(default="", metadata={"env": "HIVE_KAFKA_BOOTSTRAP", "doc": "Kafka bootstrap servers; empty means `up` starts its own broker on 127.0.0.1:9092"})
    kafka_credentials: str = field(default="", metadata={"env": "HIVE_KAFKA_CREDENTIALS", "doc": "JSON file of each role's Kafka user and password; empty means $HIVE_HOME/kafka/credentials.json, which the launched broker writes"})
    kafka_user: str = field(default="", metadata={"env": "HIVE_KAFKA_USER", "doc": "this process's own Kafka user, whatever its role (instead of the credentials file)"})
    kafka_password: str = field(default="", metadata={"env": "HIVE_KAFKA_PASSWORD", "doc": "the password of HIVE_KAFKA_USER"})
    kafka_mechanism: str = field(default="SCRAM-SHA-256", metadata={"env": "HIVE_KAFKA_SASL_MECHANISM", "doc": "SASL mechanism of every Kafka client: SCRAM-SHA-256 (a login costs the client ~2 ms of CPU) or SCRAM-SHA-512 (~9 ms)"})
    kafka_security_protocol: str = field(default="SASL_PLAINTEXT", metadata={"env": "HIVE_KAFKA_SECURITY_PROTOCOL", "doc": "SASL_PLAINTEXT, or SASL_SSL for a broker with TLS (the system's CA certificates)"})
    database_url: str = field(default="", metadata={"env": "HIVE_DATABASE_URL", "doc": "SQLAlchemy URL of the store; empty means SQLite at $HIVE_HOME/hive.db"})
    api_host: str = field(default="127.0.0.1", metadata={"env": "HIVE_API_HOST", "doc": "address the API binds"})
    api_port: int = field(default=8080, metadata={"env": "HIVE_API_PORT", "doc": "port the API binds"})
    api_url: str = field(default="", metadata={"env": "HIVE_API_URL", "doc": "where the CLI finds the API; empty means http://HIVE_API_HOST:HIVE_API_PORT"})
    feed_memory: int = field(default=10_000, metadata={"env": "HIVE_FEED_MEMORY", "doc": "recent events each API process keeps for SSE clients that reconnect"})
    feed_queue: int = field(default=1_000, metadata={"env": "HIVE_FEED_QUEUE", "doc": "frames waiting for one SSE client before it is dropped as too slow"})
    feeds_per_principal: int = field(default=20, metadata={"env": "HIVE_FEEDS_PER_PRINCIPAL", "doc": "SSE feeds one principal may hold open at once on one API process (429 beyond)"})
    feed_catchup_max: int = field(default=100_000, metadata={"env": "HIVE_FEED_CATCHUP_MAX", "doc": "events a resumed feed may be behind the log's end (410 beyond: read older history with `hive-streams export`)"})
    home: str = field(default=str(REPO_ROOT / ".hive"), metadata={"env": "HIVE_HOME", "doc": "project-owned directory for broker data, logs, pids and the embedded store"})
    topic_prefix: str = field(default="hive", metadata={"env": "HIVE_TOPIC_PREFIX", "doc": "prefix of every topic name (tests use their own)"})
    partitions: int = field(default=4, metadata={"env": "HIVE_PARTITIONS", "doc": "partitions of each aggregate topic"})
    worker_id: str = field(default="hive-worker", metadata={"env": "HIVE_WORKER_ID", "doc": "consumer group of the workers, and the prefix of their transactional ids"})
    commit_interval_ms: int = field(default=0, metadata={"env": "HIVE_COMMIT_INTERVAL_MS", "doc": "how long a decider keeps a transaction open to gather more commands (0: commit every batch; more: fewer, larger transactions, later visibility)"})
    local_follow_ups: int = field(default=1, metadata={"env": "HIVE_LOCAL_FOLLOW_UPS", "doc": "1: a follow-up command to a partition the same worker decides is decided in the transaction that writes it (one hop fewer); 0: only when read back"})
    snapshot_every_events: int = field(default=10_000, metadata={"env": "HIVE_SNAPSHOT_EVERY_EVENTS", "doc": "a decider snapshots a partition's state, and the matcher its whole state, after this many events"})
    snapshot_every_seconds: float = field(default=60.0, metadata={"env": "HIVE_SNAPSHOT_EVERY_SECONDS", "doc": "and at least this often while events arrive"})
    session_timeout_seconds: float = field(default=10.0, metadata={"env": "HIVE_SESSION_TIMEOUT_SECONDS", "doc": "a worker silent this long loses its partitions to the others (and is fenced)"})
    audit_checkpoint_rows: int = field(default=1_000, metadata={"env": "HIVE_AUDIT_CHECKPOINT_ROWS", "doc": "the audit connector publishes its chain heads to `<prefix>.audit.checkpoints` after this many rows"})
    audit_checkpoint_seconds: float = field(default=10.0, metadata={"env": "HIVE_AUDIT_CHECKPOINT_SECONDS", "doc": "and at least this often while rows arrive"})
    heartbeat_seconds: float = field(default=2.0, metadata={"env": "HIVE_HEARTBEAT_SECONDS", "doc": "executor heartbeat interval"})
    agent_timeout_seconds: float = field(default=10.0, metadata={"env": "HIVE_AGENT_TIMEOUT_SECONDS", "doc": "an agent silent this long is not offered work"})
    sweep_seconds: float = field(default=1.0, metadata={"env": "HIVE_SWEEP_SECONDS", "doc": "how often the worker checks deadlines and silent agents"})
    schedule_grace_seconds: float = field(default=60.0, metadata={"env": "HIVE_SCHEDULE_GRACE_SECONDS", "doc": "a schedule's slot the worker reaches later than this was missed: its catch-up policy (skip, once, all) decides whether it runs"})
    callback_secret: str = field(default="", metadata={"env": "HIVE_CALLBACK_SECRET", "doc": "HMAC-SHA256 key of the `X-Hive-Signature` on callbacks; without it (or a tenant's own) a callback is abandoned unsent"})
    callback_secrets: str = field(default="", metadata={"env": "HIVE_CALLBACK_SECRETS", "doc": "tenants' own callback keys, `tenant=secret,tenant=secret`; a tenant not named gets HIVE_CALLBACK_SECRET"})
    callback_backoff_ms: int = field(default=1000, metadata={"env": "HIVE_CALLBACK_BACKOFF_MS", "doc": "wait after a callback's first failed attempt; it doubles after each, up to HIVE_CALLBACK_BACKOFF_MAX_MS (10 attempts in all)"})
    callback_backoff_max_ms: int = field(default=600_000, metadata={"env": "HIVE_CALLBACK_BACKOFF_MAX_MS", "doc": "longest wait between two attempts of a callback"})
    platform_fee_bps: int = field(default=500, metadata={"env": "HIVE_PLATFORM_FEE_BPS", "doc": "platform fee on each settled payment, in basis points (500 = 5%)"})
    service_secret: str = field(default="", metadata={"env": "HIVE_SERVICE_SECRET", "doc": "secret (32 bytes or more) the fabric's own processes seal their commands with, and producer keys derive from; empty means the one `up` keeps in $HIVE_HOME/keys"})
    jwt_secret: str = field(default="", metadata={"env": "HIVE_JWT_SECRET", "doc": "HS256 secret (32 bytes or more) that signs development tokens; the API refuses to start without it or HIVE_JWT_JWKS (`up` makes one in $HIVE_HOME)"})
    jwt_jwks: str = field(default="", metadata={"env": "HIVE_JWT_JWKS", "doc": "path or https URL of a JWKS whose keys sign RS256/ES256 tokens (production)"})
    jwt_issuer: str = field(default="", metadata={"env": "HIVE_JWT_ISSUER", "doc": "when set, tokens must carry this `iss`, and minted ones do"})
    token: str = field(default="", metadata={"env": "HIVE_TOKEN", "doc": "the token the CLI and the Python client send as `Authorization: Bearer`"})
    rate_limits: str = field(default="executions.start=admin:200,developer:100;workflows.create=admin:100,developer:50;agents.register=admin:10", metadata={"env": "HIVE_RATE_LIMITS", "doc": "per-minute limits per principal by role, `name=role:n,role:n;...`; a role without a limit (or 0) may not act"})
    max_body_bytes: int = field(default=1_000_000, metadata={"env": "HIVE_MAX_BODY_BYTES", "doc": "largest task definition the API accepts"})
    schemas_dir: str = field(default=str(REPO_ROOT / "schemas"), metadata={"env": "HIVE_SCHEMAS_DIR", "doc": "directory of the Avro schemas"})
    sandbox_cpu_seconds: int = field(default=60, metadata={"env": "HIVE_SANDBOX_CPU_SECONDS", "doc": "CPU seconds a shell or python node may use (each of its processes); a node may ask for less with `limits.cpu_seconds`"})
    sandbox_memory_mb: int = field(default=512, metadata={"env": "HIVE_SANDBOX_MEMORY_MB", "doc": "address space of each process of a node, in MiB (`limits.memory_mb`)"})
    sandbox_processes: int = field(default=64, metadata={"env": "HIVE_SANDBOX_PROCESSES", "doc": "processes a node may have at once (`limits.processes`)"})
    sandbox_file_mb: int = field(default=100, metadata={"env": "HIVE_SANDBOX_FILE_MB", "doc": "largest file a node may write, and most it may write to stdout or stderr in all, in MiB (`limits.file_mb`)"})
    sandbox_output_kb: int = field(default=512, metadata={"env": "HIVE_SANDBOX_OUTPUT_KB", "doc": "inline limit, in KiB: a node output whose JSON is larger is written in chunks to `<prefix>.blobs` and its event carries a reference (digest, size, signature); under the broker's message size (`limits.output_kb`)"})
    sandbox_output_mb: int = field(default=100, metadata={"env": "HIVE_SANDBOX_OUTPUT_MB", "doc": "largest node output kept, in MiB: a shell node's stdout beyond it is truncated, a python node's reply fails the node (`limits.output_mb`)"})
    record_max_kb: int = field(default=900, metadata={"env": "HIVE_RECORD_MAX_KB", "doc": "largest command or event record the fabric takes, in KiB (under the broker's message size, so what a command causes fits too); a larger one is dead-lettered"})
    default_deadline_seconds: float = field(default=3600.0, metadata={"env": "HIVE_DEFAULT_DEADLINE_SECONDS", "doc": "deadline of a task submitted without one, from its submission: nothing waits or holds escrow for ever"})
    sandbox_network: int = field(default=1, metadata={"env": "HIVE_SANDBOX_NETWORK", "doc": "1: a shell or python node that declares `network: true` shares the host's network (without the egress policy); 0: no node gets a network"})
    sandbox_env: str = field(default="LANG,LC_ALL,TZ", metadata={"env": "HIVE_SANDBOX_ENV", "doc": "the executor's environment variables passed into nodes (comma-separated); nothing else of its environment is"})
    sandbox_pythonpath: str = field(default="", metadata={"env": "HIVE_SANDBOX_PYTHONPATH", "doc": "directories python nodes import from, read-only (os.pathsep-separated); empty means the executor's own import path"})
    sandbox_uid_base: int = field(default=4_000_000, metadata={"env": "HIVE_SANDBOX_UID_BASE", "doc": "an executor running as root runs each node as its own unprivileged uid drawn from the million starting here"})
    egress_allow: str = field(default="", metadata={"env": "HIVE_EGRESS_ALLOW", "doc": "addresses http nodes may reach although the egress policy denies them: comma-separated `IP`, `CIDR`, `IP:port` or `[IPv6]:port`"})
    egress_max_kb: int = field(default=1024, metadata={"env": "HIVE_EGRESS_MAX_KB", "doc": "largest HTTP response body an http node reads, in KiB (the node fails beyond it)"})
    egress_timeout_seconds: float = field(default=30.0, metadata={"env": "HIVE_EGRESS_TIMEOUT_SECONDS", "doc": "connect, read and write timeout of each HTTP request (the node's own timeout bounds the whole)"})
    metrics_host: str = field(default="127.0.0.1", metadata={"env": "HIVE_METRICS_HOST", "doc": "address the metrics ports of the worker, the connector and executors bind"})
    worker_metrics_port: int = field(default=0, metadata={"env": "HIVE_WORKER_METRICS_PORT", "doc": "port of the worker's Prometheus /metrics (0: off)"})
    connect_metrics_port: int = field(default=0, metadata={"env": "HIVE_CONNECT_METRICS_PORT", "doc": "port of the audit connector's Prometheus /metrics (0: off)"})
    executor_metrics_port: int = field(default=0, metadata={"env": "HIVE_EXECUTOR_METRICS_PORT", "doc": "port of an executor's Prometheus /metrics (0: off; `executor --metrics-port` sets it per process)"})
    alert_rules: str = field(default="", metadata={"env": "HIVE_ALERT_RULES", "doc": "alert rules over the defaults, `rule=setting:value,...;...` with rules high_cpu, agent_down, slow_response, performance_target and settings threshold, count, cooldown (seconds), severity"})
    kafka_version: str = field(default="4.4.0", metadata={"env": "HIVE_KAFKA_VERSION", "doc": "Apache Kafka version the launcher assembles from Maven Central"})
    kafka_port: int = field(default=9092, metadata={"env": "HIVE_KAFKA_PORT", "doc": "port of the launched broker (the first of a cluster's: node i listens on this + i - 1, its controller on this + brokers + i - 1)"})
    kafka_brokers: int = field(default=0, metadata={"env": "HIVE_KAFKA_BROKERS", "doc": "brokers the launcher runs (`kafka up --brokers 3`); 0: as many as HIVE_HOME's cluster was formatted with, else 1"})
    replication_factor: int = field(default=0, metadata={"env": "HIVE_REPLICATION_FACTOR", "doc": "replicas of each topic hive-streams creates; 0: 3 when the cluster has three or more brokers, else 1"})
    min_insync_replicas: int = field(default=0, metadata={"env": "HIVE_MIN_INSYNC_REPLICAS", "doc": "`min.insync.replicas` of those topics (acks=all writes need this many replicas); 0: 2 when the replication factor is 3 or more, else 1"})
    otlp_endpoint: str = field(default="", metadata={"env": "HIVE_OTLP_ENDPOINT", "doc": "OTLP/HTTP collector that receives every process's trace spans (e.g. http://127.0.0.1:4318); empty: spans are not exported; the ids of a client's trace still travel in `ce_traceparent`"})
    log_format: str = field(default="text", metadata={"env": "HIVE_LOG_FORMAT", "doc": "`text`, or `json`: one JSON object per log line, with the trace id, span id and correlation id of the record being handled"})
    postgres_port: int = field(default=55432, metadata={"env": "HIVE_POSTGRES_PORT", "doc": "port of the launched PostgreSQL cluster"})

    @property
    def home_path(self) -> Path:
        return Path(self.home)

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_path / 'hive.db'}"

    @property
    def api_base_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"


def load() -> Settings:
    values = {}
    for f in fields(Settings):
        raw = os.environ.get(f.metadata["env"])
        if raw is not None:
            values[f.name] = type(f.default)(raw)
    return Settings(**values)


def describe() -> list[tuple[str, str, str]]:
    return [(f.metadata["env"], str(f.default), f.metadata["doc"]) for f in fields(Settings)]
