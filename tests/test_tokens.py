"""Tokens through PyJWT: HS256 with a secret, RS256/ES256 with a JWKS file or URL, and what is refused."""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hive_streams.auth import InvalidToken, TokenVerifier, mint
from hive_streams.auth.tokens import parse_ttl
from hive_streams.exceptions import ConfigError

SECRET = "s" * 32
CLAIMS = {"sub": "ann", "tenant": "acme", "roles": ["developer"]}


def claims(**extra) -> dict:
    now = int(time.time())
    return {**CLAIMS, "iat": now, "exp": now + 600, **extra}


def jwks_of(*keys) -> str:
    """A JWKS of the public halves: (kid, algorithm, private key)."""
    out = []
    for kid, algorithm, key in keys:
        jwk = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key.public_key()))
        out.append({**jwk, "kid": kid, "alg": algorithm, "use": "sig"})
    return json.dumps({"keys": out})


@pytest.fixture(scope="module")
def keys():
    return ("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1())), \
           ("rsa-1", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def signed(key_spec, **extra) -> str:
    kid, algorithm, key = key_spec
    return jwt.encode(claims(**extra), key, algorithm=algorithm, headers={"kid": kid})


def test_a_minted_token_names_its_principal():
    principal = TokenVerifier(SECRET).verify(mint(SECRET, "ann", "acme", ["developer"], 60))
    assert (principal.account, principal.roles) == ("acme/ann", frozenset({"developer"}))


def test_a_token_that_passed_is_taken_again_without_decoding_until_it_expires(monkeypatch):
    from hive_streams.auth import tokens
    verifier, decoded = TokenVerifier(SECRET), []
    real_decode = jwt.decode
    monkeypatch.setattr(tokens.jwt, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    now = time.time()
    token = jwt.encode({**CLAIMS, "iat": int(now), "exp": int(now) + 30}, SECRET, algorithm="HS256")
    long_lived = mint(SECRET, "bob", "acme", ["developer"], 3600)
    first = verifier.verify(token)
    assert verifier.verify(token) == first and len(decoded) == 1  # the second request decoded nothing
    with pytest.raises(InvalidToken):
        verifier.verify(mint("t" * 32, "ann", "acme", ["developer"], 60))  # a bad token is never kept
    assert verifier.kept[token][1] == int(now) + 30 + tokens.LEEWAY_SECONDS  # no longer than PyJWT takes it
    monkeypatch.setattr(tokens.time, "time", lambda: int(now) + 30 + tokens.LEEWAY_SECONDS)
    verifier.verify(token)  # past its expiry the kept answer is not used: decoded again (PyJWT's clock is real)
    assert len(decoded) == 3
    monkeypatch.setattr(tokens.time, "time", lambda: now)
    verifier.verify(long_lived)
    monkeypatch.setattr(tokens.time, "time", lambda: now + tokens.KEEP_SECONDS)
    verifier.verify(long_lived)  # kept a minute at most
    assert len(decoded) == 5


@pytest.mark.parametrize("token, reason", [
    (lambda: mint(SECRET, "ann", "acme", ["developer"], -60), "expired"),
    (lambda: mint("t" * 32, "ann", "acme", ["developer"], 60), "Signature"),
    (lambda: jwt.encode({**CLAIMS, "iat": int(time.time())}, SECRET, algorithm="HS256"), "exp"),
    (lambda: jwt.encode({**claims(), "roles": ["root"]}, SECRET, algorithm="HS256"), "root"),
    (lambda: jwt.encode(claims(), None, algorithm="none"), "not accepted"),
    (lambda: jwt.encode(claims(), SECRET * 2, algorithm="HS512"), "not accepted"),
    (lambda: "not.a.token", "invalid token"),
])
def test_bad_tokens_are_refused(token, reason):
    with pytest.raises(InvalidToken, match=reason):
        TokenVerifier(SECRET).verify(token())


def test_an_issuer_when_configured_is_required():
    verifier = TokenVerifier(SECRET, issuer="https://id.example")
    assert verifier.verify(mint(SECRET, "ann", "acme", ["viewer"], 60, issuer="https://id.example")).sub == "ann"
    with pytest.raises(InvalidToken, match="iss"):
        verifier.verify(mint(SECRET, "ann", "acme", ["viewer"], 60))


def test_without_a_secret_or_jwks_nothing_starts():
    with pytest.raises(ConfigError, match="HIVE_JWT_SECRET"):
        TokenVerifier()
    with pytest.raises(ConfigError, match="32 bytes"):
        TokenVerifier("short")


def test_a_jwks_file_verifies_es256_and_rs256_by_kid(tmp_path, keys):
    path = tmp_path / "jwks.json"
    path.write_text(jwks_of(*keys))
    verifier = TokenVerifier(jwks=str(path))
    for spec in keys:
        assert verifier.verify(signed(spec)).account == "acme/ann"
    with pytest.raises(InvalidToken, match="no key"):
        verifier.verify(signed(("other", "ES256", keys[0][2])))
    with pytest.raises(InvalidToken, match="not accepted"):  # no secret configured: HS256 is not accepted
        verifier.verify(mint(SECRET, "ann", "acme", ["admin"], 60))


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def test_the_jwks_public_key_cannot_be_used_as_an_hmac_secret(tmp_path, keys):
    """The classic confusion: an HS256 token whose HMAC key is the server's public RSA key."""
    path = tmp_path / "jwks.json"
    path.write_text(jwks_of(keys[1]))
    public = keys[1][2].public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = _b64(json.dumps(claims(roles=["admin"])).encode())
    forged = b".".join([head, body, _b64(hmac.new(public, head + b"." + body, hashlib.sha256).digest())]).decode()
    with pytest.raises(InvalidToken, match="not accepted"):
        TokenVerifier(jwks=str(path)).verify(forged)
    with pytest.raises(InvalidToken, match="Signature"):
        TokenVerifier(SECRET, jwks=str(path)).verify(forged)  # HS256 is checked with the secret only


def test_a_jwks_url_is_fetched_and_cached(keys):
    body = jwks_of(*keys).encode()
    fetches = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            fetches.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        verifier = TokenVerifier(jwks=f"http://127.0.0.1:{server.server_port}/jwks.json")
        assert verifier.fetches
        for _ in range(3):
            assert verifier.verify(signed(keys[0])).sub == "ann"
        assert fetches == ["/jwks.json"]
    finally:
        server.shutdown()


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("45", 45)])
def test_ttl_texts(text, seconds):
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-5m", "1.5h", "0"])
def test_bad_ttl_texts(text):
    with pytest.raises(ValueError):
        parse_ttl(text)
