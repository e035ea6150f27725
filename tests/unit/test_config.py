"""Settings: where values come from, how strings become typed values, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import DEFAULT_IMAGE_POLICY, Settings, SettingsError


def toml(tmp_path: Path, text: str, name: str = "gateway.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults() -> None:
    s = Settings.load({})
    assert (s.host, s.port, s.auth, s.egress_review, s.log_json) == ("127.0.0.1", 8080, "dev", "human", True)
    assert s.image_policy == DEFAULT_IMAGE_POLICY
    assert s.store_dir is None
    assert s.base_url == "http://127.0.0.1:8080"


def test_precedence_defaults_file_env_overrides(tmp_path: Path) -> None:
    path = toml(tmp_path, 'port = 9001\nhost = "0.0.0.0"\nlog_level = "DEBUG"\n')
    from_file = Settings.load({}, path)
    assert (from_file.port, from_file.host, from_file.log_level) == (9001, "0.0.0.0", "DEBUG")
    assert from_file.auth == "dev"  # untouched default

    env = {"TRE_GATEWAY_PORT": "9002", "TRE_GATEWAY_LOG_LEVEL": "WARNING"}
    from_env = Settings.load(env, path)
    assert (from_env.port, from_env.host, from_env.log_level) == (9002, "0.0.0.0", "WARNING")

    overridden = Settings.load(env, path, port=9003, host=None)
    assert (overridden.port, overridden.host, overridden.log_level) == (9003, "0.0.0.0", "WARNING")


def test_config_file_can_be_named_in_the_environment(tmp_path: Path) -> None:
    path = toml(tmp_path, "port = 9100\n")
    assert Settings.load({"TRE_GATEWAY_CONFIG": str(path)}).port == 9100
    other = toml(tmp_path, "port = 9200\n", name="other.toml")
    assert Settings.load({"TRE_GATEWAY_CONFIG": "/nonexistent.toml"}, other).port == 9200  # explicit file wins


def test_unrelated_environment_variables_are_ignored() -> None:
    assert Settings.load({"PATH": "/bin", "HOME": "/root", "PORT": "1"}).port == 8080


def test_false_override_is_applied() -> None:
    assert Settings.load({"TRE_GATEWAY_LOG_JSON": "true"}, log_json=False).log_json is False


@pytest.mark.parametrize("raw, value", [("1", True), ("true", True), ("YES", True), ("on", True),
                                        ("0", False), ("False", False), ("no", False), ("OFF", False)])
def test_bool_from_text(raw: str, value: bool) -> None:
    assert Settings.load({"TRE_GATEWAY_LOG_JSON": raw}).log_json is value


def test_bool_from_toml(tmp_path: Path) -> None:
    assert Settings.load({}, toml(tmp_path, "log_json = false\n")).log_json is False


@pytest.mark.parametrize("raw", ["maybe", "2", ""])
def test_bad_bool_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load({"TRE_GATEWAY_LOG_JSON": raw})
    assert info.value.args[0].startswith("log_json:")


def test_numbers_and_paths_from_text() -> None:
    s = Settings.load(
        {
            "TRE_GATEWAY_EXECUTOR_UID": "2000",
            "TRE_GATEWAY_DISPATCHER_POLL_SECONDS": "0.25",
            "TRE_GATEWAY_DATA_DIR": "/var/lib/tre",
            "TRE_GATEWAY_STORE_DIR": "/srv/store",
        }
    )
    assert s.executor_uid == 2000 and isinstance(s.executor_uid, int)
    assert s.dispatcher_poll_seconds == 0.25
    assert s.data_dir == Path("/var/lib/tre")
    assert s.store_dir == Path("/srv/store") and s.resolved_store_dir == Path("/srv/store")
    assert s.resolved_workspace_dir == Path("/var/lib/tre/work")


def test_empty_optional_path_is_none() -> None:
    assert Settings.load({"TRE_GATEWAY_STORE_DIR": ""}).store_dir is None


@pytest.mark.parametrize("name, raw", [("port", "eighty"), ("port", "80.5"), ("dispatcher_threads", ""),
                                       ("dispatcher_lease_seconds", "soon")])
def test_bad_numbers_are_refused(name: str, raw: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load({"TRE_GATEWAY_" + name.upper(): raw})
    assert info.value.args[0].startswith(f"{name}:")


@pytest.mark.parametrize(
    "raw, value",
    [
        ("alpine=localhost/a:1,python = localhost/py:3", {"alpine": "localhost/a:1", "python": "localhost/py:3"}),
        ("k=v=w", {"k": "v=w"}),
        ("a=b,", {"a": "b"}),
        ('{"alpine": "localhost/a:1", "ubuntu:22.04": "localhost/u"}',
         {"alpine": "localhost/a:1", "ubuntu:22.04": "localhost/u"}),
        ("  {\"n\": 1}", {"n": "1"}),
    ],
)
def test_dict_from_text(raw: str, value: dict[str, str]) -> None:
    assert Settings.load({"TRE_GATEWAY_IMAGE_POLICY": raw}).image_policy == value


def test_dict_from_toml_table(tmp_path: Path) -> None:
    path = toml(tmp_path, '[image_policy]\nalpine = "localhost/a"\n"ubuntu:22.04" = "localhost/u"\n')
    assert Settings.load({}, path).image_policy == {"alpine": "localhost/a", "ubuntu:22.04": "localhost/u"}


@pytest.mark.parametrize("raw", ["alpine", "a=b,c", '{"broken": ', "[1, 2]"])
def test_bad_dicts_are_refused(raw: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load({"TRE_GATEWAY_IMAGE_POLICY": raw})
    assert info.value.args[0].startswith("image_policy:")


@pytest.mark.parametrize(
    "raw, value",
    [
        (".txt,.csv", [".txt", ".csv"]),
        (" .txt , .csv ,", [".txt", ".csv", ""]),
        ('[".txt", ""]', [".txt", ""]),
    ],
)
def test_list_from_text(raw: str, value: list[str]) -> None:
    assert Settings.load({"TRE_GATEWAY_EGRESS_ALLOWED_EXTENSIONS": raw}).egress_allowed_extensions == value


def test_list_from_toml(tmp_path: Path) -> None:
    path = toml(tmp_path, 'egress_allowed_extensions = [".csv", ".txt"]\n')
    assert Settings.load({}, path).egress_allowed_extensions == [".csv", ".txt"]


def test_bad_json_list_is_refused() -> None:
    with pytest.raises(SettingsError):
        Settings.load({"TRE_GATEWAY_EGRESS_ALLOWED_EXTENSIONS": "[.txt"})


def test_unknown_setting_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load({"TRE_GATEWAY_PROT": "80", "TRE_GATEWAY_HOTS": "x"})
    assert info.value.args[0] == "unknown setting(s): hots, prot"
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings.load({}, toml(tmp_path, "[server]\nport = 1\n"))
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings.load({}, colour="blue")


@pytest.mark.parametrize("name, raw", [("auth", "ldap"), ("auth", "DEV"), ("egress_review", "auto"),
                                       ("egress_review", "")])
def test_bad_enum_values_are_refused(name: str, raw: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.load({"TRE_GATEWAY_" + name.upper(): raw})
    assert info.value.args[0].startswith(f"{name}: ")


@pytest.mark.parametrize("name, raw", [("auth", "none"), ("auth", "dev"), ("egress_review", "automatic")])
def test_good_enum_values(name: str, raw: str) -> None:
    assert getattr(Settings.load({"TRE_GATEWAY_" + name.upper(): raw}), name) == raw


def test_oidc_needs_issuer_and_audience() -> None:
    with pytest.raises(SettingsError, match="oidc"):
        Settings.load({"TRE_GATEWAY_AUTH": "oidc"})
    with pytest.raises(SettingsError, match="oidc"):
        Settings.load({"TRE_GATEWAY_AUTH": "oidc", "TRE_GATEWAY_OIDC_ISSUER": "https://idp"})
    s = Settings.load({"TRE_GATEWAY_AUTH": "oidc", "TRE_GATEWAY_OIDC_ISSUER": "https://idp",
                       "TRE_GATEWAY_OIDC_AUDIENCE": "tre"})
    assert s.auth == "oidc"


def test_page_sizes_must_be_consistent() -> None:
    with pytest.raises(SettingsError, match="default_page_size"):
        Settings.load({"TRE_GATEWAY_DEFAULT_PAGE_SIZE": "3000"})
    with pytest.raises(SettingsError, match="default_page_size"):
        Settings.load({"TRE_GATEWAY_DEFAULT_PAGE_SIZE": "0"})
    assert Settings.load({"TRE_GATEWAY_DEFAULT_PAGE_SIZE": "10", "TRE_GATEWAY_MAX_PAGE_SIZE": "10"}).max_page_size == 10


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_derived_values() -> None:
    s = Settings.load({"TRE_GATEWAY_PUBLIC_URL": "https://tre.example.org/gw/", "TRE_GATEWAY_DATA_DIR": "/d"})
    assert s.base_url == "https://tre.example.org/gw"
    assert s.dev_secret_file == Path("/d/dev-jwt-secret")
    assert s.resolved_database_url == "sqlite:////d/gateway.db"
    assert Settings.load({"TRE_GATEWAY_DATABASE_URL": "postgresql://x"}).resolved_database_url == "postgresql://x"
