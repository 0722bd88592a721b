"""SSH key material: generate, write 0600 without overwriting, and compute AWS's key pair fingerprints."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file; a FIFO or device is refused without blocking on it (ValueError)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(1 << 20)
    finally:
        os.close(fd)


def load_private_key(path: Path) -> PrivateKey:
    """Read a PEM (PKCS#1/PKCS#8) or OpenSSH private key without a passphrase. Raises ValueError."""
    data = _read_regular(path)
    key: object
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not an unencrypted RSA or ED25519 private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(f"{path} holds a {type(key).__name__}; EC2 key pairs are RSA or ED25519")
    return key


def public_openssh(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


def fingerprint_created_rsa(key: rsa.RSAPrivateKey) -> str:
    """AWS-created RSA key pairs: SHA-1 of the private key's PKCS#8 DER, colon hex."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return _colon_hex(hashlib.sha1(der).digest())


def fingerprint_imported_rsa(key: rsa.RSAPrivateKey) -> str:
    """Imported RSA key pairs: MD5 of the public key's DER (SubjectPublicKeyInfo), colon hex."""
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return _colon_hex(hashlib.md5(der).digest())


def fingerprint_ed25519(key: ed25519.Ed25519PrivateKey) -> str:
    """ED25519 key pairs: base64 SHA-256 of the OpenSSH public key blob (as `ssh-keygen -l` shows it)."""
    blob = base64.b64decode(public_openssh(key).split()[1])
    return base64.b64encode(hashlib.sha256(blob).digest()).decode()


def _norm(fp: str) -> str:
    fp = fp.strip()
    if fp.upper().startswith("SHA256:"):
        fp = fp[7:]
    return fp.rstrip("=").lower() if ":" in fp else fp.rstrip("=")


def match(key: PrivateKey, aws_fingerprint: str) -> tuple[bool, str, str]:
    """Compare a local key with AWS's KeyFingerprint using the formula AWS used. -> (same, formula, local fp)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        local = fingerprint_ed25519(key)
        return _norm(local) == _norm(aws_fingerprint), "ED25519 SHA-256", local
    parts = _norm(aws_fingerprint).split(":")
    if len(parts) == 20:
        local = fingerprint_created_rsa(key)
        return _norm(local) == _norm(aws_fingerprint), "RSA created by AWS (SHA-1 of PKCS#8)", local
    local = fingerprint_imported_rsa(key)
    return _norm(local) == _norm(aws_fingerprint), "RSA imported (MD5 of public DER)", local


def generate(kind: str = "rsa") -> PrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


def private_pem(key: PrivateKey) -> bytes:
    fmt = serialization.PrivateFormat.OpenSSH if isinstance(key, ed25519.Ed25519PrivateKey) \
        else serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Create `path` with mode 0600; never replace an existing file (FileExistsError)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, private_pem(key))
    finally:
        os.close(fd)
