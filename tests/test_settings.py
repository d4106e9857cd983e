"""Settings come from the environment through one object; bad values name their variable."""

from __future__ import annotations

import pytest

from madre.errors import ConfigError
from madre.settings import DEFAULT_TOKEN, load_settings


def test_defaults_serve_loopback_on_8001_with_sqlite_at_data_runtime(monkeypatch) -> None:
    for name in ("VX11_TOKEN", "DATABASE_URL", "MADRE_HOST", "MADRE_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8001)
    assert settings.database_url == "sqlite:///data/runtime/vx11.db"
    assert settings.token.get_secret_value() == DEFAULT_TOKEN
    assert settings.confirm_ttl_seconds == 900


def test_environment_variables_override_the_defaults(monkeypatch) -> None:
    monkeypatch.setenv("MADRE_PORT", "9001")
    monkeypatch.setenv("SWITCH_URL", "http://switch.internal:8002/")
    monkeypatch.setenv("MADRE_CONFIRM_TTL_SECONDS", "60")
    settings = load_settings()
    assert settings.port == 9001
    assert settings.switch_url == "http://switch.internal:8002"
    assert settings.confirm_ttl_seconds == 60


def test_the_token_never_shows_in_the_settings_repr(monkeypatch) -> None:
    monkeypatch.setenv("VX11_TOKEN", "s3cr3t-token-value")
    assert "s3cr3t-token-value" not in repr(load_settings())


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MADRE_PORT", "99999"), ("DATABASE_URL", "sqlite3:x"), ("HERMES_URL", "ftp://h"),
     ("MADRE_CHAT_WAIT_SECONDS", "soon"), ("MADRE_LOG_LEVEL", "LOUD")],
)
def test_an_invalid_value_raises_config_error_naming_the_variable(monkeypatch, variable,
                                                                   value) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_binding_a_public_address_with_the_default_token_is_refused() -> None:
    settings = load_settings(host="0.0.0.0", token=DEFAULT_TOKEN)
    with pytest.raises(ConfigError, match="VX11_TOKEN"):
        settings.check_exposure()


def test_binding_a_public_address_with_an_own_token_is_allowed() -> None:
    load_settings(host="0.0.0.0", token="my-own-secret").check_exposure()


def test_logs_are_text_on_a_terminal_and_json_otherwise_unless_madre_log_format_says(
        monkeypatch) -> None:
    import io

    from madre.logs import resolve_format

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("MADRE_LOG_FORMAT", raising=False)
    assert load_settings().log_format == "auto"
    assert resolve_format("auto", Terminal()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", Terminal()) == "json"
    assert resolve_format("text", io.StringIO()) == "text"


def test_each_module_may_have_its_own_retries_else_madre_step_retries(monkeypatch) -> None:
    monkeypatch.setenv("MADRE_STEP_RETRIES", "4")
    monkeypatch.setenv("MADRE_SHUB_RETRIES", "0")
    monkeypatch.setenv("MADRE_RETRY_AFTER_MAX_SECONDS", "3")
    settings = load_settings()
    assert settings.module_retries("shub") == 0
    assert settings.module_retries("hermes") == 4
    assert settings.retry_after_max_seconds == 3


def test_a_database_url_is_shown_with_its_password_masked_and_sqlite_paths_absolute(
        tmp_path, monkeypatch) -> None:
    from madre.settings import database_shown

    monkeypatch.chdir(tmp_path)
    assert database_shown("postgresql://madre:pw@db/madre") == "postgresql://madre:****@db/madre"
    assert database_shown("sqlite:///data/x.db") == f"sqlite:///{tmp_path.resolve()}/data/x.db"
    assert database_shown("sqlite:////srv/x.db") == "sqlite:////srv/x.db"


def test_the_token_is_read_from_vx11_token_file_without_its_newline(tmp_path,
                                                                    monkeypatch) -> None:
    monkeypatch.delenv("VX11_TOKEN", raising=False)
    secret = tmp_path / "token"
    secret.write_text("file-token-0123456789\n")
    monkeypatch.setenv("VX11_TOKEN_FILE", str(secret))
    settings = load_settings(host="0.0.0.0")
    assert settings.token.get_secret_value() == "file-token-0123456789"
    settings.check_exposure()  # not the default token: every address may be bound


def test_vx11_token_wins_over_vx11_token_file(tmp_path, monkeypatch) -> None:
    secret = tmp_path / "token"
    secret.write_text("file-token-0123456789")
    monkeypatch.setenv("VX11_TOKEN_FILE", str(secret))
    monkeypatch.setenv("VX11_TOKEN", "env-token-0123456789")
    assert load_settings().token.get_secret_value() == "env-token-0123456789"


@pytest.mark.parametrize(("content", "problem"), [("", "is empty"), (None, "cannot be read")])
def test_an_empty_or_missing_vx11_token_file_stops_start_up_naming_it(
        tmp_path, monkeypatch, content, problem) -> None:
    monkeypatch.delenv("VX11_TOKEN", raising=False)
    secret = tmp_path / "token"
    if content is not None:
        secret.write_text(content)
    monkeypatch.setenv("VX11_TOKEN_FILE", str(secret))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "VX11_TOKEN_FILE" in str(refused.value) and str(secret) in str(refused.value)
    assert problem in str(refused.value)
