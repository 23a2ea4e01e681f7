"""The centre's XML signature on its CAP alerts (optional): an enveloped XML-DSig signature
(RSA or ECDSA with SHA-256, exclusive canonicalisation) as the alert's last element, where
the CAP 1.2 schema allows `ds:Signature`. A receiver verifies it with the centre's
certificate; any change to the signed alert breaks it.

The key and certificate are PEM files named in the settings (`CITYOPS_CAP_SIGNING_KEY_FILE`,
`CITYOPS_CAP_SIGNING_CERT_FILE`, docs/cap.md); without them alerts go out unsigned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from signxml.algorithms import CanonicalizationMethod, SignatureMethod
from signxml.exceptions import InvalidInput, InvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import XMLVerifier

from cityops.domain.errors import InvalidValue
from cityops.feeds.cap import check_document, serialize


class AlertSignatureInvalid(Exception):
    """A signed alert whose signature does not verify with the centre's certificate."""


@dataclass(frozen=True)
class AlertSigner:
    """Signs alerts with the centre's private key; its certificate travels in the
    signature's KeyInfo."""

    key_pem: bytes
    cert_pem: bytes

    @classmethod
    def from_files(cls, key_file: Path, cert_file: Path) -> AlertSigner:
        try:
            key, cert = key_file.read_bytes(), cert_file.read_bytes()
        except OSError as error:
            raise InvalidValue(f"cannot read the CAP signing key or certificate: {error}") \
                from None
        signer = cls(key, cert)
        signer.sign(_PROBE)  # a key that does not match its certificate fails at start
        return signer

    def sign(self, document: bytes) -> bytes:
        """The alert with its enveloped signature, checked again against the schema."""
        root = etree.fromstring(document, etree.XMLParser(resolve_entities=False,
                                                          no_network=True))
        signer = XMLSigner(signature_algorithm=_algorithm(self.key_pem),
                           digest_algorithm="sha256",
                           c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
        # No default prefix: the signature's elements stay in the ds namespace.
        signer.namespaces = {"ds": "http://www.w3.org/2000/09/xmldsig#"}
        signed = signer.sign(root, key=self.key_pem, cert=self.cert_pem.decode())
        verify(serialize(signed), self.cert_pem)
        data = serialize(signed)
        check_document(data)
        return data


def _algorithm(key_pem: bytes) -> SignatureMethod:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return SignatureMethod.ECDSA_SHA256
    return SignatureMethod.RSA_SHA256


def verify(document: bytes, cert_pem: bytes) -> bytes:
    """The signed alert's bytes if its signature verifies with `cert_pem`; otherwise
    `AlertSignatureInvalid` (a changed alert, another key, no signature)."""
    try:
        result = XMLVerifier().verify(document, x509_cert=cert_pem.decode())
    except (InvalidSignature, InvalidInput) as error:
        raise AlertSignatureInvalid(f"the alert's signature does not verify: {error}") \
            from None
    if isinstance(result, list):  # only with several expected references: not asked for
        raise AlertSignatureInvalid("the alert carries more than one signed reference")
    signed = result.signed_xml
    if signed is None:
        raise AlertSignatureInvalid("the alert carries no signed content")
    data: bytes = etree.tostring(signed)
    return data


_PROBE = (b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>probe</identifier>'
          b'<sender>probe</sender><sent>2026-01-01T00:00:00-00:00</sent><status>System'
          b'</status><msgType>Alert</msgType><scope>Private</scope><addresses>probe'
          b'</addresses></alert>')
"""A minimal valid alert (a System message to a private address) to test a key with."""
