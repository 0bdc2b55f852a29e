"""OperatorConfig from the environment: defaults, parsing, errors naming the variable."""

from __future__ import annotations

import pytest

from kflow_operator.podspec import PodConfig
from kflow_operator.settings import OperatorConfig, SettingsError, from_env


def test_defaults() -> None:
    config = from_env({})
    assert config == OperatorConfig()
    assert config.cluster_wide
    assert config.pod == PodConfig()
    assert dict(config.pod.default_requests) == {"cpu": "100m", "memory": "256Mi"}
    assert config.pod.run_as_user == 1000


def test_values_are_read() -> None:
    config = from_env({
        "KFLOW_WATCH_NAMESPACES": "ml, team-b,ml",
        "KFLOW_STEP_SERVICE_ACCOUNT": "steps",
        "KFLOW_S3_SECRET_NAME": "store-creds",
        "KFLOW_S3_CONFIG_NAME": "store-where",
        "KFLOW_DEFAULT_REQUESTS": "cpu=250m, memory=1Gi",
        "KFLOW_DEFAULT_LIMITS": "memory=2Gi",
        "KFLOW_STEP_RUN_AS_USER": "image",
        "KFLOW_STEP_RUN_AS_GROUP": "2000",
        "KFLOW_INFRA_RETRIES": "5",
        "KFLOW_PENDING_TIMEOUT_SECONDS": "90.5",
        "KFLOW_POD_CREATES_PER_SECOND": "50",
        "KFLOW_POD_CREATE_BURST": "100",
        "KFLOW_STATUS_WRITES_PER_SECOND": "2",
        "KFLOW_STATUS_WRITE_BURST": "4",
        "KFLOW_METRICS_PORT": "0",
        "KFLOW_METRICS_ADDRESS": "0.0.0.0",
        "KFLOW_STEP_CODE_CACHE": "/tmp/kflow-code",
    })
    assert config.namespaces == ("ml", "team-b")
    assert config.pod.step_service_account == "steps"
    assert config.pod.s3_secret_name == "store-creds"
    assert config.pod.s3_config_name == "store-where"
    assert dict(config.pod.default_requests) == {"cpu": "250m", "memory": "1Gi"}
    assert dict(config.pod.default_limits) == {"memory": "2Gi"}
    assert config.pod.run_as_user is None and config.pod.run_as_group == 2000
    assert config.pod.code_cache_dir == "/tmp/kflow-code"
    assert (config.infra_retries, config.pending_timeout_seconds) == (5, 90.5)
    assert (config.pod_creates_per_second, config.pod_create_burst) == (50.0, 100)
    assert (config.status_writes_per_second, config.status_write_burst) == (2.0, 4)
    assert (config.metrics_port, config.metrics_address) == (0, "0.0.0.0")


def test_empty_default_requests_means_none() -> None:
    assert dict(from_env({"KFLOW_DEFAULT_REQUESTS": ""}).pod.default_requests) == {}


@pytest.mark.parametrize(("name", "value"), [
    ("KFLOW_INFRA_RETRIES", "three"),
    ("KFLOW_INFRA_RETRIES", "-1"),
    ("KFLOW_PENDING_TIMEOUT_SECONDS", "0"),
    ("KFLOW_PENDING_TIMEOUT_SECONDS", "nan"),
    ("KFLOW_POD_CREATES_PER_SECOND", "-3"),
    ("KFLOW_POD_CREATE_BURST", "0"),
    ("KFLOW_METRICS_PORT", "70000"),
    ("KFLOW_METRICS_ADDRESS", "localhost:80"),
    ("KFLOW_DEFAULT_REQUESTS", "cpu:100m"),
    ("KFLOW_DEFAULT_REQUESTS", "memory=lots"),
    ("KFLOW_STEP_RUN_AS_USER", "0"),
    ("KFLOW_STEP_SERVICE_ACCOUNT", "Steps!"),
    ("KFLOW_WATCH_NAMESPACES", "ml,Bad_NS"),
])
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name) as info:
        from_env({name: value})
    assert "expected" in str(info.value)
