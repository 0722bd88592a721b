"""Load mlbatch.yaml or [tool.mlbatch], validate it against schemas/config.schema.json, and type it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class ConfigError(Exception):
    """A bad config: the message names the file, the key path and what is wrong."""


@dataclass(frozen=True)
class Rule:
    protocol: str
    from_port: int
    to_port: int
    cidr: str | None = None
    cidr_ipv6: str | None = None
    source_security_group: str | None = None
    prefix_list_id: str | None = None
    description: str | None = None

    @property
    def peer(self) -> str:
        return self.cidr or self.cidr_ipv6 or self.source_security_group or self.prefix_list_id or "?"

    def __str__(self) -> str:
        ports = "all" if self.protocol == "-1" else (
            str(self.from_port) if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}"
        )
        proto = "all" if self.protocol == "-1" else self.protocol
        return f"{proto}/{ports} from {self.peer}"


@dataclass(frozen=True)
class SecurityGroupDecl:
    name: str
    description: str = "pytest-mlbatch: AWS Batch compute environment"
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class AllowStatement:
    actions: tuple[str, ...]
    resources: tuple[str, ...]


@dataclass(frozen=True)
class JobRole:
    name: str
    path: str = "/"
    allow: tuple[AllowStatement, ...] = ()


@dataclass(frozen=True)
class JobSize:
    vcpus: float | None = None
    memory: int | None = None
    gpus: int | None = None


@dataclass(frozen=True)
class Exemption:
    check: str
    resource: str
    until: dt.date
    reason: str


@dataclass(frozen=True)
class CanaryConfig:
    """The opt-in canary (--mlbatch-canary): its command, wait bound (s) and size (None: the minimum)."""

    command: tuple[str, ...] = ("true",)
    timeout: int = 600
    vcpus: float | None = None
    memory: int | None = None


@dataclass(frozen=True)
class TargetConfig:
    region: str | None = None
    profile: str | None = None
    account_id: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str | None = None


@dataclass(frozen=True)
class Settings:
    """The validated config, typed. Every field is optional; absent means 'discover or skip'."""

    source: str = "(defaults)"
    region: str | None = None
    profile: str | None = None
    account_id: str | None = None
    image_uri: str | None = None
    image_local: str | None = None
    image_pull: bool = False
    image_scan_fail_at: str = "critical"
    image_registry_endpoint: str | None = None
    image_max_size_mib: int | None = None
    key_name: str | None = None
    key_file: str | None = None
    key_type: str = "rsa"
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    security_group: SecurityGroupDecl | None = None
    min_free_ips: int = 16
    trusted_egress: tuple[str, ...] = ()
    service_role: str | None = None
    instance_role: str | None = None
    instance_profile: str | None = None
    execution_role: str | None = None
    job_role: JobRole | None = None
    compute_environment: str | None = None
    job_queue: str | None = None
    job_definition: str | None = None
    job_definition_file: str | None = None
    job: JobSize | None = None
    fix_allow: tuple[str, ...] = ()
    fix_tags: dict[str, str] = field(default_factory=dict)
    skip: tuple[str, ...] = ()
    severity: dict[str, str] = field(default_factory=dict)
    exempt: tuple[Exemption, ...] = ()
    targets: tuple[TargetConfig, ...] = ()
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates and times as the strings the user wrote (the schema validates them)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class WrittenInt(int):
    """An integer that shows itself as the user wrote it (`012345670123`, not the octal value YAML made of it)."""

    written: str

    def __repr__(self) -> str:
        return self.written

    __str__ = __repr__


class WrittenFloat(float):
    """A float that shows itself as the user wrote it (`1e3`, `.5`)."""

    written: str

    def __repr__(self) -> str:
        return self.written

    __str__ = __repr__


def _written_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    value = WrittenInt(loader.construct_yaml_int(node))
    value.written = str(node.value)
    return value


def _written_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = WrittenFloat(loader.construct_yaml_float(node))
    value.written = str(node.value)
    return value


_Loader.add_constructor("tag:yaml.org,2002:int", _written_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _written_float)

CONFIG_NAMES = ("mlbatch.yaml", "mlbatch.yml")


def schema() -> dict[str, Any]:
    text = resources.files("pytest_mlbatch.schemas").joinpath("config.schema.json").read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


def find_config(rootdir: Path, explicit: str | None) -> tuple[str, dict[str, Any]]:
    """Return (source label, raw mapping). An explicit path must be a config file; otherwise mlbatch.yaml, then
    [tool.mlbatch] in pyproject.toml; no config at all is an error naming where it looked (a preflight of nothing
    must not pass a CI gate)."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_absolute():
            path = rootdir / path if not path.exists() else path
        if path.is_symlink() and not path.exists():
            raise ConfigError(f"{explicit}: config file not found: {path} is a link to {os.readlink(path)}, "
                              "which does not exist")
        if path.is_dir():
            raise ConfigError(f"{explicit}: {path} is a directory, not a config file (name the file, e.g. "
                              f"{path / CONFIG_NAMES[0]})")
        if not path.is_file():
            raise ConfigError(f"{explicit}: config file not found (looked for {path})")
        return str(path), _read(path)
    for name in CONFIG_NAMES:
        path = rootdir / name
        if path.is_file():
            return str(path), _read(path)
    pyproject = rootdir / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{pyproject}: not valid TOML: {exc}") from None
        section = data.get("tool", {}).get("mlbatch")
        if section is not None:
            if not isinstance(section, dict):
                raise ConfigError(f"{pyproject}: [tool.mlbatch] must be a table")
            return f"{pyproject} [tool.mlbatch]", section
    looked = ", ".join([*(str(rootdir / n) for n in CONFIG_NAMES), f"[tool.mlbatch] in {pyproject}"])
    raise ConfigError(f"no preflight config found: looked for {looked}. Write mlbatch.yaml (at least a job queue "
                      "and a job definition: see README, 'Against a real account') or pass --mlbatch-config PATH")


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if not text.strip():
        raise ConfigError(f"{path}: the config file is empty (write at least `version: 1` and what to check, e.g. "
                          "batch.job_queue and batch.job_definition)")
    if path.suffix == ".toml":
        try:
            doc: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise ConfigError(f"{path}: cannot be read as a config: {_why(exc)}") from None
        doc = doc.get("tool", {}).get("mlbatch", doc)
    elif path.suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise ConfigError(f"{path}: cannot be read as a config: {_why(exc)}") from None
    else:
        try:
            doc = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            where = ""
            mark = getattr(exc, "problem_mark", None)
            if mark is not None:
                where = f" at line {mark.line + 1}, column {mark.column + 1}"
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
        except (ValueError, RecursionError, MemoryError) as exc:  # e.g. an integer of more than 4300 digits
            raise ConfigError(f"{path}: cannot be read as a config: {_why(exc)}") from None
    if doc is None:
        raise ConfigError(f"{path}: the config file holds no settings (only comments); write at least `version: 1` "
                          "and what to check, e.g. batch.job_queue and batch.job_definition")
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(doc).__name__}")
    return doc


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return f"nested more deeply than Python can follow (at most {MAX_DEPTH} levels are accepted)"
    if isinstance(exc, MemoryError):
        return "too large to hold in memory"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


# How every schema pattern ends: `$` alone also matches before a final newline in Python's re; `(?![\s\S])` makes
# it the very end, in Python and in the ECMA-262 regexes of editors that use the schema alike (unlike `\Z`).
END = "$(?![\\s\\S])"
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# A config is small: far below these. A document beyond them (deep nesting, YAML aliases that expand to millions of
# values) is refused before validation, whose messages would otherwise build the whole expanded value.
MAX_DEPTH = 32
MAX_VALUES = 20_000


def check_shape(source: str, doc: Any) -> None:
    """Refuse what would crash or exhaust validation: more than MAX_VALUES values once aliases are expanded,
    nesting deeper than MAX_DEPTH, keys that are not strings. Iterative and stops at the first excess."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(doc, ())]
    seen = 0
    while stack:
        value, where = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError(f"invalid config {source}:\n  (top level): more than {MAX_VALUES} values once YAML "
                              "aliases are expanded; a config is far smaller (an alias bomb?)")
        if len(where) > MAX_DEPTH:
            raise ConfigError(f"invalid config {source}:\n  {_path(where[:MAX_DEPTH])}: nested more than "
                              f"{MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and (bad := CONTROL.search(key)):
                    raise ConfigError(f"invalid config {source}:\n  {_path(where)}: a key contains the control "
                                      f"character {bad.group()!r}")
                if not isinstance(key, str):
                    raise ConfigError(f"invalid config {source}:\n  {_path([*where, str(key)])}: the key "
                                      f"{_short(key)} is a {type(key).__name__}; keys must be strings")
                stack.append((item, (*where, key)))
        elif isinstance(value, list):
            stack.extend((item, (*where, i)) for i, item in enumerate(value))
        elif isinstance(value, str) and (bad := CONTROL.search(value)):
            raise ConfigError(f"invalid config {source}:\n  {_path(where)}: contains the control character "
                              f"{bad.group()!r}; every value is one line of printable text")


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "(a huge integer)"
    return text if len(text) <= 40 else text[:37] + "..."


TRUSTED_EGRESS_PATTERN = ("^((tgw|pcx|eni|vpce|i|lgw|cagw)-[0-9a-zA-Z]+|arn:[a-z-]+:networkmanager::\\d{12}:"
                          "core-network/[0-9a-zA-Z-]+)$")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


def _path(parts: Any) -> str:
    """A key path as users write it (network.subnet_ids[0]); odd keys are quoted, so none can forge a line."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif not _PLAIN_KEY.match(str(p)):
            out += f"[{str(p)!r}]"
        else:
            out += f".{p}" if out else str(p)
    return out or "(top level)"


def validate(source: str, raw: dict[str, Any]) -> None:
    """Raise ConfigError listing every problem as 'key.path: what is wrong'."""
    import jsonschema

    check_shape(source, raw)
    validator = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())
    problems: list[str] = []
    for err in sorted(validator.iter_errors(raw), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        where = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = sorted(err.schema.get("properties", {}))
            for key in sorted(set(err.instance) - set(allowed)):
                problems.append(f"{_path([*where, key])}: unknown key (allowed here: {', '.join(allowed)})")
            continue
        if err.validator == "oneOf" and where and isinstance(err.instance, dict) and "protocol" in err.instance:
            problems.append(f"{_path(where)}: a rule needs exactly one of cidr, cidr_ipv6, source_security_group, "
                            "prefix_list_id")
            continue
        if err.validator == "pattern":
            problems.append(f"{_path(where)}: {err.instance!r} does not have the expected form "
                            f"({_describe_pattern(err.schema.get('pattern', ''))})")
            continue
        if err.validator == "type" and isinstance(err.instance, int) and err.schema.get("type") == "string":
            problems.append(f"{_path(where)}: {err.instance!r} must be a string (quote it in YAML)")
            continue
        problems.append(f"{_path(where)}: {err.message}")
    if problems:
        shown = problems[:12]
        more = f"\n  (+{len(problems) - 12} more)" if len(problems) > 12 else ""
        raise ConfigError(f"invalid config {source}:\n  " + "\n  ".join(shown) + more)


def _describe_pattern(pattern: str) -> str:
    pattern = pattern.removesuffix(END) + "$" if pattern.endswith(END) else pattern
    hints = {
        "^\\d{12}$": "12 digits",
        "^[a-z]{2}(-[a-z]+)+-\\d+$": "a region such as us-east-1",
        "^(ENV|IMG|KEY|SG|NET|IAM|BAT|JOB)\\d{3}$": "a check id such as NET003",
        "^((ENV|IMG|KEY|SG|NET|IAM|BAT|JOB)\\d{3}|[A-Z][A-Z0-9]*-[A-Z]+\\d{3})$": "a check id such as NET003, or a "
                                                                          "project's own such as X-DATA001",
        "^\\d{4}-\\d{2}-\\d{2}$": "a date YYYY-MM-DD",
        TRUSTED_EGRESS_PATTERN: "a route target id such as tgw-0abc, pcx-0abc, eni-0abc, vpce-0abc, or a core "
                                "network ARN",
    }
    return hints.get(pattern, f"pattern {pattern}")


def _rule(d: dict[str, Any]) -> Rule:
    proto = str(d["protocol"])
    proto = "-1" if proto == "all" else proto
    if "port" in d:
        lo = hi = int(d["port"])
    else:
        lo, hi = int(d.get("from_port", 0 if proto != "-1" else -1)), int(d.get("to_port", d.get("from_port", 65535)))
        if proto == "-1":
            lo, hi = -1, -1
    return Rule(proto, lo, hi, d.get("cidr"), d.get("cidr_ipv6"), d.get("source_security_group"),
                d.get("prefix_list_id"), d.get("description"))


def _strings(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def build(source: str, raw: dict[str, Any], *, region: str | None = None, profile: str | None = None) -> Settings:
    """Validate and type a raw config, applying the CLI overrides (--aws-region, --aws-profile)."""
    validate(source, raw)
    image = raw.get("image", {})
    key = raw.get("key_pair", {})
    net = raw.get("network", {})
    iam = raw.get("iam", {})
    batch = raw.get("batch", {})
    fix = raw.get("fix", {})
    checks = raw.get("checks", {})
    sg = net.get("security_group")
    jr = iam.get("job_role")
    job = batch.get("job")
    exempt = []
    for i, e in enumerate(checks.get("exempt", [])):
        try:
            until = dt.date.fromisoformat(e["until"])
        except ValueError:
            raise ConfigError(f"invalid config {source}:\n  checks.exempt[{i}].until: {e['until']!r} is not a "
                              "real date (YYYY-MM-DD)") from None
        exempt.append(Exemption(e["check"], e["resource"], until, e["reason"]))
    return Settings(
        source=source,
        region=region or raw.get("region"),
        profile=profile or raw.get("profile"),
        account_id=raw.get("account_id"),
        image_uri=image.get("uri"),
        image_local=image.get("local"),
        image_pull=bool(image.get("pull", False)),
        image_scan_fail_at=image.get("scan_fail_at", "critical"),
        image_registry_endpoint=image.get("registry_endpoint"),
        image_max_size_mib=image.get("max_size_mib"),
        key_name=key.get("name"),
        key_file=key.get("private_key_file"),
        key_type=key.get("type", "rsa"),
        vpc_id=net.get("vpc_id"),
        subnet_ids=tuple(net.get("subnet_ids", ())),
        security_group_ids=tuple(net.get("security_group_ids", ())),
        security_group=SecurityGroupDecl(
            name=sg["name"],
            description=sg.get("description", SecurityGroupDecl.description),
            ingress=tuple(_rule(r) for r in sg.get("ingress", ())),
            egress=tuple(_rule(r) for r in sg.get("egress", ())),
        ) if sg else None,
        min_free_ips=int(net.get("min_free_ips", 16)),
        trusted_egress=tuple(net.get("trusted_egress", ())),
        service_role=iam.get("service_role"),
        instance_role=iam.get("instance_role"),
        instance_profile=iam.get("instance_profile"),
        execution_role=iam.get("execution_role"),
        job_role=JobRole(
            name=jr["name"],
            path=jr.get("path", "/"),
            allow=tuple(AllowStatement(_strings(s["action"]), _strings(s["resource"])) for s in jr.get("allow", ())),
        ) if jr else None,
        compute_environment=batch.get("compute_environment"),
        job_queue=batch.get("job_queue"),
        job_definition=batch.get("job_definition"),
        job_definition_file=batch.get("job_definition_file"),
        job=JobSize(job.get("vcpus"), job.get("memory"), job.get("gpus")) if job else None,
        fix_allow=tuple(fix.get("allow", ())),
        fix_tags=dict(fix.get("tags", {})),
        skip=tuple(checks.get("skip", ())),
        severity=dict(checks.get("severity", {})),
        exempt=tuple(exempt),
        targets=tuple(TargetConfig(**t) for t in raw.get("targets", ())),
        canary=_canary(raw.get("canary", {})),
        raw=raw,
    )


def _canary(c: dict[str, Any]) -> CanaryConfig:
    return CanaryConfig(command=tuple(c.get("command", CanaryConfig.command)),
                        timeout=int(c.get("timeout", CanaryConfig.timeout)), vcpus=c.get("vcpus"),
                        memory=c.get("memory"))


def load(rootdir: Path, explicit: str | None, *, region: str | None = None, profile: str | None = None) -> Settings:
    source, raw = find_config(rootdir, explicit)
    settings = build(source, raw, region=region, profile=profile)
    _check_key_file(source, rootdir, settings.key_file)
    return settings


def _check_key_file(source: str, rootdir: Path, value: str | None) -> None:
    """A private key file that exists must be a regular file: reading a FIFO or a device would hang or never end."""
    if not value:
        return
    path = Path(value).expanduser()
    path = path if path.is_absolute() else rootdir / path
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # absent (KEY001's fix may create it) or unreadable (KEY001 says so)
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a directory" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file")
        raise ConfigError(f"invalid config {source}:\n  key_pair.private_key_file: {path} is {kind}, not a regular "
                          "file")
