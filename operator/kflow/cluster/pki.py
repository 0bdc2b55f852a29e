"""The embedded cluster's certificates and keys.

Owns: one CA, the apiserver's serving certificate, the admin client
certificate (group `system:masters`, used by the controller-manager, the
scheduler, the process node and the user's kubeconfig), the process node's
serving certificate for its log endpoint, and the service-account signing
key pair. Files are created once per cluster folder and reused on every
later `up`, so kubeconfigs and tokens stay valid across restarts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID_DAYS = 3650
# The apiserver is reached as 127.0.0.1 / localhost, and as the in-cluster names
# (the first address of the service range, kubernetes.default.svc...).
APISERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
APISERVER_IPS = ("127.0.0.1", "10.0.0.1")


@dataclass(frozen=True)
class Pki:
    """Paths of every PKI file of one cluster folder."""

    dir: Path

    @property
    def ca_crt(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    def crt(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey) -> (
    x509.CertificateBuilder
):
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _make_ca(pki: Pki) -> None:
    key = _new_key()
    name = _name("kflow-local-ca")
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(pki.ca_key, key)
    pki.ca_crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_leaf(
    pki: Pki,
    name: str,
    subject: x509.Name,
    *,
    server: bool,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> None:
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_crt.read_bytes())
    key = _new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=True, key_cert_sign=False,
                crl_sign=False, content_commitment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if dns or ips:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(pki.key(name), key)
    pki.crt(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure(directory: Path) -> Pki:
    """Create whatever PKI file is missing under `directory`; return their paths."""
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    if not (pki.ca_crt.exists() and pki.ca_key.exists()):
        _make_ca(pki)
    leaves: dict[str, tuple[x509.Name, bool, tuple[str, ...], tuple[str, ...]]] = {
        "apiserver": (_name("kube-apiserver"), True, APISERVER_NAMES, APISERVER_IPS),
        "admin": (_name("kflow-admin", "system:masters"), False, (), ()),
        "node": (_name("kflow-process-node"), True, ("localhost",), ("127.0.0.1",)),
    }
    for name, (subject, server, dns, ips) in leaves.items():
        if not (pki.crt(name).exists() and pki.key(name).exists()):
            _make_leaf(pki, name, subject, server=server, dns=dns, ips=ips)
    if not (pki.sa_key.exists() and pki.sa_pub.exists()):
        key = _new_key()
        _write_key(pki.sa_key, key)
        pki.sa_pub.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return pki
