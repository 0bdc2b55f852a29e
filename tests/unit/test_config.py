"""kflow's configuration: file, environment, precedence, secrets kept out of output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kflow import cli, config


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = config.load(environ={"KFLOW_CONFIG": ""})
    assert settings.s3.endpoint is None
    assert settings.namespace == "default"
    assert settings.image.startswith("ghcr.io/kflow/kflow-runner:")
    with pytest.raises(config.ConfigError, match="kflow configure"):
        settings.require_s3()


def test_file_then_environment_win_in_that_order(tmp_path: Path) -> None:
    file = write(tmp_path / "c.yaml", """
s3: {endpoint: "http://file:9000", bucket: b1, accessKey: AK, secretKey: SK}
kubernetes: {namespace: ml, context: prod}
image: example/runner:1
""")
    settings = config.load(file, environ={"KFLOW_S3_BUCKET": "b2", "KFLOW_NAMESPACE": "team"})
    assert settings.s3.endpoint == "http://file:9000"
    assert settings.s3.bucket == "b2"
    assert settings.namespace == "team"
    assert settings.context == "prod"
    assert settings.image == "example/runner:1"
    assert settings.sources == (str(file), "environment")
    assert settings.require_s3().secret_key == "SK"


def test_credentials_file_of_the_embedded_cluster(tmp_path: Path) -> None:
    creds = write(tmp_path / "s3.json", json.dumps({
        "endpoint": "http://127.0.0.1:9000", "accessKey": "AK", "secretKey": "SK",
        "bucket": "kflow", "region": "us-east-1"}))
    settings = config.from_environment({"KFLOW_S3_CREDENTIALS": str(creds)})
    assert (settings.s3.endpoint, settings.s3.access_key, settings.s3.secret_key) == (
        "http://127.0.0.1:9000", "AK", "SK")
    assert settings.s3.endpoint_for_pods == "http://127.0.0.1:9000"


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    settings = config.from_environment({"KFLOW_S3_SECRET_KEY": "hunter2-secret",
                                        "KFLOW_S3_ACCESS_KEY": "AK"})
    assert "hunter2-secret" not in settings.describe()
    assert "hunter2-secret" not in repr(settings)


@pytest.mark.parametrize(("text", "fragment"), [
    ("s3: [unclosed", "not valid YAML"),
    ("- a list", "expected a mapping"),
    ("bogus: 1", r"unknown key\(s\) bogus"),
])
def test_bad_files_say_what_and_where(tmp_path: Path, text: str, fragment: str) -> None:
    file = write(tmp_path / "c.yaml", text)
    with pytest.raises(config.ConfigError, match=fragment) as error:
        config.load(file, environ={})
    assert str(file) in str(error.value)


def test_a_named_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(environ={"KFLOW_CONFIG": str(tmp_path / "none.yaml")})


def test_configure_writes_a_private_file_and_merges(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "config.yaml"
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("s3cr3t\n"))
    assert cli.main(["configure", "--file", str(file), "--s3-endpoint", "http://s3:9000",
                     "--s3-access-key", "AK", "--s3-secret-key-stdin"]) == 0
    assert file.stat().st_mode & 0o077 == 0
    assert cli.main(["configure", "--file", str(file), "--namespace", "ml"]) == 0
    out = capsys.readouterr().out
    assert "s3cr3t" not in out
    settings = config.load(file, environ={})
    assert settings.s3.secret_key == "s3cr3t"
    assert settings.s3.endpoint == "http://s3:9000"
    assert settings.namespace == "ml"
