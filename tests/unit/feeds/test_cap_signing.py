"""The centre's XML signature on its alerts: a signed alert stays valid CAP, verifies with
the centre's certificate, and any change to it (or another certificate) fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from cityops.domain.errors import InvalidValue
from cityops.feeds import cap
from cityops.feeds.cap_signing import AlertSignatureInvalid, AlertSigner, verify

from .test_cap_documents import message


def key_and_certificate(kind: str = "rsa") -> tuple[bytes, bytes]:
    key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa"
           else ec.generate_private_key(ec.SECP256R1()))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CityOps command centre")])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_a_signed_alert_is_valid_cap_and_verifies(kind: str) -> None:
    key, cert = key_and_certificate(kind)
    signed = AlertSigner(key, cert).sign(cap.render(message()))
    cap.check_document(signed)  # the OASIS schema allows ds:Signature last
    root = etree.fromstring(signed)
    assert etree.QName(root[-1]).localname == "Signature"
    assert b"cityops-warning-1-v1" in verify(signed, cert)


def test_a_tampered_alert_fails_verification() -> None:
    key, cert = key_and_certificate()
    signed = AlertSigner(key, cert).sign(cap.render(message()))
    tampered = signed.replace(b"Leave the area.", b"Stay where you are.")
    assert tampered != signed
    cap.check_document(tampered)  # still valid CAP: only the signature tells
    with pytest.raises(AlertSignatureInvalid):
        verify(tampered, cert)


def test_another_certificate_does_not_verify_the_alert() -> None:
    key, cert = key_and_certificate()
    _, other = key_and_certificate()
    signed = AlertSigner(key, cert).sign(cap.render(message()))
    with pytest.raises(AlertSignatureInvalid):
        verify(signed, other)


def test_an_unsigned_alert_does_not_verify() -> None:
    _, cert = key_and_certificate()
    with pytest.raises(AlertSignatureInvalid):
        verify(cap.render(message()), cert)


def test_the_signer_loads_from_files_and_refuses_a_key_that_is_not_its_certificates(
        tmp_path: Path) -> None:
    key, cert = key_and_certificate()
    other_key, _ = key_and_certificate()
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "other.pem").write_bytes(other_key)
    AlertSigner.from_files(tmp_path / "key.pem", tmp_path / "cert.pem")
    with pytest.raises(AlertSignatureInvalid):
        AlertSigner.from_files(tmp_path / "other.pem", tmp_path / "cert.pem")
    with pytest.raises(InvalidValue, match="cannot read"):
        AlertSigner.from_files(tmp_path / "missing.pem", tmp_path / "cert.pem")
