"""Runtime settings: dev defaults, MUGPOS_* overrides, .env files, and errors that name the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mugpos.core.settings import Settings, SettingsError, bootstrap_servers, env_name, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's MUGPOS_* / AWS_* variables and the repo's .env out of every test."""
    for name in list(os.environ):
        if name.upper().startswith(("MUGPOS_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # Settings' own env_file=".env" default would read the repo's file


# -- defaults -------------------------------------------------------------------------------

DEV_DEFAULTS = {
    "broker": "kafka://127.0.0.1:19092",
    "topic_prefix": "mugpos.",
    "store": "s3://mugpos-images",
    "s3_endpoint": "http://127.0.0.1:8333",
    "redis_url": "redis://127.0.0.1:16379/0",
    "mongodb_uri": "mongodb://127.0.0.1:27117",
    "web_port": 6066,
    "aws_access_key_id": None,
    "aws_secret_access_key": None,
    "log_level": "info",
}


@pytest.mark.parametrize(("field", "expected"), DEV_DEFAULTS.items(), ids=list(DEV_DEFAULTS))
def test_defaults_match_dev_services(field: str, expected: object) -> None:
    assert getattr(load_settings(env_file=None), field) == expected


def test_default_bootstrap_and_topics() -> None:
    settings = load_settings(env_file=None)
    assert settings.bootstrap == ["127.0.0.1:19092"]
    assert settings.topic("images") == "mugpos.images"


# -- environment overrides ------------------------------------------------------------------

ENV_CASES = [
    ("MUGPOS_BROKER", "kafka://k1:9092;k2:9093", "bootstrap", ["k1:9092", "k2:9093"]),
    ("MUGPOS_TOPIC_PREFIX", "prod-", "topic_prefix", "prod-"),
    ("MUGPOS_STORE", "r2://bucket/prefix", "store", "r2://bucket/prefix"),
    ("MUGPOS_STORE", "file:///var/lib/mugpos", "store", "file:///var/lib/mugpos"),
    (
        "MUGPOS_S3_ENDPOINT",
        "https://acct.r2.cloudflarestorage.com/",
        "s3_endpoint",
        "https://acct.r2.cloudflarestorage.com",
    ),
    ("MUGPOS_S3_ENDPOINT", "", "s3_endpoint", ""),
    ("MUGPOS_REDIS_URL", "redis://cache:6379/2", "redis_url", "redis://cache:6379/2"),
    ("MUGPOS_MONGODB_URI", "mongodb://db:27017", "mongodb_uri", "mongodb://db:27017"),
    ("MUGPOS_WEB_PORT", "8080", "web_port", 8080),
    ("MUGPOS_BATCH_MAX", "64", "batch_max", 64),
    ("MUGPOS_CONFIDENCE", "0.5", "confidence", 0.5),
    ("MUGPOS_LOG_LEVEL", "debug", "log_level", "debug"),
    ("mugpos_web_port", "7070", "web_port", 7070),
    ("AWS_DEFAULT_REGION", "auto", "aws_region", "auto"),
    ("AWS_REGION", "eu-west-1", "aws_region", "eu-west-1"),
]


@pytest.mark.parametrize(("var", "value", "attr", "expected"), ENV_CASES, ids=[f"{c[0]}={c[1]}" for c in ENV_CASES])
def test_env_overrides(monkeypatch: pytest.MonkeyPatch, var: str, value: str, attr: str, expected: object) -> None:
    monkeypatch.setenv(var, value)
    assert getattr(load_settings(env_file=None), attr) == expected


def test_keyword_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUGPOS_WEB_PORT", "7000")
    assert load_settings(env_file=None, web_port=7001).web_port == 7001


# -- .env files -----------------------------------------------------------------------------


def test_env_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        "# comment\n"
        "MUGPOS_BROKER=kafka://broker.example:9092\n"
        "MUGPOS_WEB_PORT=7000\n"
        "AWS_ACCESS_KEY_ID=from-dotenv\n"
        "MUGPOS_BROKER_PORT=19092\n",  # a services.sh knob, not a setting: must be ignored
        encoding="utf-8",
    )
    settings = load_settings(env_file=env_file)
    assert settings.bootstrap == ["broker.example:9092"]
    assert settings.web_port == 7000
    assert settings.aws_access_key_id is not None
    assert settings.aws_access_key_id.get_secret_value() == "from-dotenv"


def test_environment_beats_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MUGPOS_WEB_PORT=7000\n", encoding="utf-8")
    monkeypatch.setenv("MUGPOS_WEB_PORT", "7001")
    assert load_settings(env_file=env_file).web_port == 7001


def test_env_file_none_ignores_dotenv_in_cwd(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MUGPOS_WEB_PORT=7000\n", encoding="utf-8")
    assert load_settings(env_file=None).web_port == 6066
    assert load_settings().web_port == 7000  # default env_file=".env" is relative to the cwd


def test_invalid_value_in_env_file_names_the_variable(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MUGPOS_BATCH_MAX=0\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="MUGPOS_BATCH_MAX"):
        load_settings(env_file=env_file)


def test_repo_env_example_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / ".env.example"
    settings = load_settings(env_file=example)
    assert settings.bootstrap == ["127.0.0.1:19092"]
    assert settings.aws_access_key_id is not None


# -- invalid values ---------------------------------------------------------------------------

INVALID = [
    ("MUGPOS_WEB_PORT", "abc"),
    ("MUGPOS_WEB_PORT", "0"),
    ("MUGPOS_WEB_PORT", "70000"),
    ("MUGPOS_BROKER", "nonsense"),
    ("MUGPOS_BROKER", "kafka://host"),
    ("MUGPOS_BROKER", "kafka://host:port"),
    ("MUGPOS_BROKER", "PLAINTEXT://host:9092"),
    ("MUGPOS_BROKER", "kafka://host:²"),
    ("MUGPOS_BROKER", ""),
    ("MUGPOS_STORE", "ftp://x"),
    ("MUGPOS_STORE", "s3://"),
    ("MUGPOS_STORE", "mugpos-images"),
    ("MUGPOS_S3_ENDPOINT", "127.0.0.1:8333"),
    ("MUGPOS_TOPIC_PREFIX", "mug pos."),
    ("MUGPOS_BATCH_MAX", "0"),
    ("MUGPOS_BATCH_MAX", "-3"),
    ("MUGPOS_CONFIDENCE", "1.5"),
    ("MUGPOS_LOG_LEVEL", "loud"),
    ("MUGPOS_APP_ID", ""),
]


@pytest.mark.parametrize(("var", "value"), INVALID, ids=[f"{v}={x!r}" for v, x in INVALID])
def test_invalid_value_raises_settings_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None)
    assert var in str(info.value)
    assert isinstance(info.value, ValueError)


def test_every_problem_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUGPOS_WEB_PORT", "abc")
    monkeypatch.setenv("MUGPOS_STORE", "ftp://x")
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None)
    assert "MUGPOS_WEB_PORT" in str(info.value)
    assert "MUGPOS_STORE" in str(info.value)


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("web_port", "MUGPOS_WEB_PORT"),
        ("broker", "MUGPOS_BROKER"),
        ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
        ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        ("aws_region", "AWS_DEFAULT_REGION"),
    ],
)
def test_env_name(field: str, variable: str) -> None:
    assert env_name(field) == variable


# -- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "MUGPOS_"], ids=["AWS_", "MUGPOS_AWS_"])
def test_aws_credentials_are_read_and_never_shown(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    monkeypatch.setenv(f"{prefix}AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID1234")
    monkeypatch.setenv(f"{prefix}AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIexampleSECRET")
    settings = load_settings(env_file=None)
    assert settings.aws_access_key_id is not None and settings.aws_secret_access_key is not None
    assert settings.aws_access_key_id.get_secret_value() == "AKIAEXAMPLEKEYID1234"
    assert settings.aws_secret_access_key.get_secret_value() == "wJalrXUtnFEMIexampleSECRET"
    for shown in (repr(settings), str(settings), repr(settings.model_dump()), settings.model_dump_json()):
        assert "AKIAEXAMPLEKEYID1234" not in shown
        assert "wJalrXUtnFEMIexampleSECRET" not in shown


def test_secret_not_leaked_by_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIexampleSECRET")
    monkeypatch.setenv("MUGPOS_WEB_PORT", "abc")
    with pytest.raises(SettingsError) as info:
        load_settings(env_file=None)
    assert "wJalrXUtnFEMIexampleSECRET" not in str(info.value)


# -- bootstrap_servers ------------------------------------------------------------------------

BOOTSTRAP = [
    ("kafka://127.0.0.1:19092", ["127.0.0.1:19092"]),
    ("kafka://a:1;b:2", ["a:1", "b:2"]),
    ("kafka://a:1,b:2", ["a:1", "b:2"]),
    ("a:1, b:2", ["a:1", "b:2"]),
    ("kafka://a:1;kafka://b:2", ["a:1", "b:2"]),
    ("kafka://a:1/", ["a:1"]),
    ("kafka://a:1;;b:2;", ["a:1", "b:2"]),
    ("  broker.example.com:9092  ", ["broker.example.com:9092"]),
    ("[::1]:9092", ["[::1]:9092"]),
    ("a:65535", ["a:65535"]),
    ("", []),
    ("kafka://", []),
    ("nonsense", []),
    ("a:0", []),
    ("a:65536", []),
    ("a:-1", []),
    ("a:port", []),
    (":9092", []),
    ("a:1;nonsense", []),
    ("a:²", []),
    ("a:١٢", []),
    ("PLAINTEXT://a:9092", []),
    ("http://a:9092", []),
]


@pytest.mark.parametrize(("url", "expected"), BOOTSTRAP, ids=[repr(u) for u, _ in BOOTSTRAP])
def test_bootstrap_servers(url: str, expected: list[str]) -> None:
    assert bootstrap_servers(url) == expected


@given(st.text())
def test_bootstrap_servers_never_raises(url: str) -> None:
    hosts = bootstrap_servers(url)
    for hostport in hosts:
        host, _, port = hostport.rpartition(":")
        assert host and "/" not in host
        assert port.isascii() and 0 < int(port) < 65536


@given(
    st.lists(
        st.tuples(st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True), st.integers(1, 65535)),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from([";", ","]),
    st.booleans(),
)
def test_bootstrap_servers_round_trip(hosts: list[tuple[str, int]], sep: str, scheme: bool) -> None:
    expected = [f"{h}:{p}" for h, p in hosts]
    url = ("kafka://" if scheme else "") + sep.join(expected)
    assert bootstrap_servers(url) == expected


def test_settings_is_the_documented_class() -> None:
    settings = load_settings(env_file=None)
    assert isinstance(settings, Settings)
    assert all(f.description for f in Settings.model_fields.values())
