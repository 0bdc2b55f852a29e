"""The embedded cluster's certificates: names, usages, reuse."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kflow.cluster import pki


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_apiserver_certificate_serves_loopback_and_in_cluster_names(tmp_path: Path) -> None:
    keys = pki.ensure(tmp_path)
    cert = load(keys.crt("apiserver"))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert cert.issuer == load(keys.ca_crt).subject


def test_admin_is_a_cluster_admin_client(tmp_path: Path) -> None:
    cert = load(pki.ensure(tmp_path).crt("admin"))
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage


def test_keys_are_private_and_reused(tmp_path: Path) -> None:
    keys = pki.ensure(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    pki.ensure(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert keys.ca_key.stat().st_mode & 0o077 == 0
    assert keys.sa_key.stat().st_mode & 0o077 == 0
