from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import env_var_name, load_settings


def test_defaults_point_at_the_local_broker_and_lake(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TIDELAKE_KAFKA__BOOTSTRAP_SERVERS", "TIDELAKE_LAKE__ROOT", "TIDELAKE_BROKER__PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.lake.root == Path("lake")
    assert settings.broker.port == 9092
    assert settings.broker.resolved_controller_port() == 9093


def test_environment_sets_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDELAKE_KAFKA__BOOTSTRAP_SERVERS", "10.0.0.5:9999")
    monkeypatch.setenv("TIDELAKE_BROKER__PORT", "19092")
    monkeypatch.setenv("TIDELAKE_LAKE__ROOT", "/data/lake")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "10.0.0.5:9999"
    assert settings.broker.port == 19092
    assert settings.broker.resolved_controller_port() == 19093
    assert settings.lake.root == Path("/data/lake")


def test_flags_win_over_environment_and_keep_the_other_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDELAKE_KAFKA__BOOTSTRAP_SERVERS", "10.0.0.5:9999")
    monkeypatch.setenv("TIDELAKE_KAFKA__CLIENT_ID", "from-env")
    settings = load_settings(kafka={"bootstrap_servers": "127.0.0.1:1234"})
    assert settings.kafka.bootstrap_servers == "127.0.0.1:1234"
    assert settings.kafka.client_id == "from-env"


def test_bad_value_names_the_variable_and_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDELAKE_BROKER__PORT", "ninety")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "TIDELAKE_BROKER__PORT='ninety'" in str(caught.value)
    assert caught.value.exit_code == 2
    assert "\n" not in str(caught.value)


def test_out_of_range_port_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDELAKE_BROKER__PORT", "70000")
    with pytest.raises(
        ConfigError, match=r"TIDELAKE_BROKER__PORT='70000': Input should be less than or equal to 65535"
    ):
        load_settings()


def test_env_var_name_joins_sections_with_double_underscore() -> None:
    assert env_var_name(("kafka", "bootstrap_servers")) == "TIDELAKE_KAFKA__BOOTSTRAP_SERVERS"


def test_query_limits_and_allowed_hosts_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tidelake.commands.query import _engine

    monkeypatch.setenv("TIDELAKE_QUERY__ALLOWED_HOSTS", '["serve", "tidelake.internal"]')
    monkeypatch.setenv("TIDELAKE_QUERY__MAX_RESULT_BYTES", "1048576")
    monkeypatch.setenv("TIDELAKE_QUERY__MAX_SPILL", "512MB")
    monkeypatch.setenv("TIDELAKE_QUERY__MAX_CACHED_RESULT_BYTES", "0")
    settings = load_settings(lake={"root": tmp_path})
    assert settings.query.allowed_hosts == ["serve", "tidelake.internal"]
    assert settings.query.max_cached_result_bytes == 0
    with _engine(settings) as engine:
        assert (engine.limits.max_result_bytes, engine.limits.max_spill) == (1_048_576, "512MB")
