"""A throwaway certificate authority for local servers with TLS listeners (openssl).

`make_pki` writes a CA, a server certificate for 127.0.0.1 (as a PKCS#12 keystore, what the
Kafka broker loads, and as PEM files, what redis-server loads) and a client certificate signed
by the same CA (PEM: what aiokafka and redis-py load), so a test can run the product against
servers that require TLS and client certificates.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class PkiError(RuntimeError):
    pass


@dataclass(frozen=True)
class Pki:
    ca_cert: Path  # PEM: clients and the broker trust it
    broker_keystore: Path  # PKCS#12: the broker's key and certificate chain
    keystore_password: str
    client_cert: Path  # PEM, signed by the CA
    client_key: Path  # PEM, unencrypted
    server_cert: Path  # PEM: the broker's certificate, for a server that loads PEM (redis-server)
    server_key: Path  # PEM, unencrypted


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise PkiError(f"openssl {' '.join(args[:2])} failed: {done.stderr.strip()}")


def _signed(name: str, subject: str, extensions: str, cwd: Path) -> None:
    """{name}.key and {name}.crt, signed by ca.key."""
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "7", "-sha256", "-extfile", f"{name}.ext", cwd=cwd)


def make_pki(directory: Path) -> Pki:
    if shutil.which("openssl") is None:
        raise PkiError("openssl is needed to make test certificates: apt-get install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "7", "-sha256", "-subj", "/CN=SalesPulse test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    _signed("broker", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "extendedKeyUsage=serverAuth,clientAuth\n", directory)  # the broker is its own client too
    _signed("client", "/CN=salespulse", "extendedKeyUsage=clientAuth\n", directory)
    password = secrets.token_urlsafe(12)
    _openssl("pkcs12", "-export", "-in", "broker.crt", "-inkey", "broker.key", "-certfile", "ca.crt",
             "-name", "broker", "-out", "broker.p12", "-passout", f"pass:{password}", cwd=directory)
    return Pki(directory / "ca.crt", directory / "broker.p12", password,
               directory / "client.crt", directory / "client.key", directory / "broker.crt", directory / "broker.key")
