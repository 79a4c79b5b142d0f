"""Certificates and site keys for a lab that has no PKI: ``bci fl certs OUT``.

Writes, under ``OUT``::

    ca.crt, ca.key                  a self-signed certificate authority (EC P-384)
    server.crt, server.key          the SuperLink's TLS certificate, signed by the CA,
                                    valid for 127.0.0.1 / localhost and any --host given
    sites/NAME.key, sites/NAME.pub  one EC P-384 key pair per site (OpenSSH format, what
                                    ``flower-supernode --auth-supernode-private-key`` and
                                    ``flwr supernode register`` read)
    sites.json                      the public-key list: site name → public key file;
                                    ``bci fl server`` registers exactly these SuperNodes

Only ``ca.crt`` and a site's own ``sites/NAME.key`` go to that site; ``ca.key`` stays
with whoever runs the certificate authority. Private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bci.errors import ConfigError

_SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class CertPaths:
    """Where :func:`make_certs` wrote each file."""

    root: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    sites: dict[str, tuple[Path, Path]]  # name → (private key, public key)
    key_list: Path


def _write_private(path: Path, data: bytes) -> None:
    # create with 0600 from the start so the key is never world-readable, even briefly
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def check_site_name(name: str, *, where: str = "site") -> str:
    """Return ``name`` if it can name files and Flower nodes, else raise ConfigError."""
    if not isinstance(name, str) or not _SITE_NAME.match(name):
        raise ConfigError(f"{where}: expected a site name of letters, digits, '.', '_' "
                          f"or '-' (at most 64), found {name!r}")
    return name


def make_site_key(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write an EC P-384 key pair ``NAME.key`` / ``NAME.pub`` (OpenSSH) for one site.

    Parameters
    ----------
    directory : path
        Folder for the two files (created).
    name : str
        The site's name.

    Returns
    -------
    (Path, Path)
        The private and the public key file.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    check_site_name(name)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private = directory / f"{name}.key"
    public = directory / f"{name}.pub"
    _write_private(private, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH)
                       + f" bci-site-{name}\n".encode())
    return private, public


def make_certs(
    out: str | Path,
    *,
    sites: Sequence[str],
    hosts: Sequence[str] = (),
    days: int = 365,
    overwrite: bool = False,
) -> CertPaths:
    """Create a CA, the SuperLink's certificate and one key pair per site.

    Parameters
    ----------
    out : path
        Output folder (created).
    sites : sequence of str
        Site names; one key pair each, listed in ``sites.json``.
    hosts : sequence of str
        Extra DNS names or IP addresses for the server certificate, besides
        ``127.0.0.1`` and ``localhost``.
    days : int
        Validity of the certificates.
    overwrite : bool
        Replace an existing CA in ``out``; by default an existing ``ca.key`` is an
        error, because re-keying silently would lock every site out.

    Returns
    -------
    CertPaths
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not sites:
        raise ConfigError("bci fl certs: expected at least one site name, found none")
    names = [check_site_name(s, where="bci fl certs --site") for s in sites]
    if len(set(names)) != len(names):
        raise ConfigError(f"bci fl certs --site: expected distinct names, found {names}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    if (root / "ca.key").exists() and not overwrite:
        raise ConfigError(f"bci fl certs: {root / 'ca.key'} exists; pass --overwrite to "
                          "replace the CA (every site then needs the new ca.crt)")

    now = _dt.datetime.now(_dt.UTC)
    not_before = now - _dt.timedelta(minutes=5)  # tolerate small clock skew between hosts
    not_after = now + _dt.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bci federated CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                     crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA384())
    )

    alt: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                   x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    for h in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            alt.append(x509.DNSName(h))
    server_key = ec.generate_private_key(ec.SECP384R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA384())
    )

    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    paths = {n: root / n for n in ("ca.crt", "ca.key", "server.crt", "server.key")}
    paths["ca.crt"].write_bytes(ca_cert.public_bytes(pem))
    _write_private(paths["ca.key"], ca_key.private_bytes(pem, pkcs8, none))
    paths["server.crt"].write_bytes(server_cert.public_bytes(pem))
    _write_private(paths["server.key"], server_key.private_bytes(pem, pkcs8, none))

    site_paths = {n: make_site_key(root / "sites", n) for n in names}
    key_list = root / "sites.json"
    key_list.write_text(json.dumps(
        {n: str(pub.relative_to(root)) for n, (_, pub) in site_paths.items()}, indent=2)
        + "\n")
    return CertPaths(root=root, ca_cert=paths["ca.crt"], ca_key=paths["ca.key"],
                     server_cert=paths["server.crt"], server_key=paths["server.key"],
                     sites=site_paths, key_list=key_list)


def read_key_list(path: str | Path) -> dict[str, Path]:
    """Read ``sites.json`` (site name → public key file, relative to its folder).

    Raises
    ------
    ConfigError
        When the file is not a JSON object of names to existing files.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: expected a JSON object site → public key, "
                          f"found an unreadable file ({err})") from err
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a non-empty JSON object site → public key, "
                          f"found {type(raw).__name__}")
    out: dict[str, Path] = {}
    for name, rel in raw.items():
        check_site_name(name, where=f"{path}: key")
        pub = (path.parent / str(rel)).resolve()
        if not pub.is_file():
            raise ConfigError(f"{path}: {name}: expected a public key file, found no "
                              f"file at {pub}")
        out[name] = pub
    return out
