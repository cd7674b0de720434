import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hive_streams.egress import EgressDenied, EgressError, EgressPolicy, Rule, fabric_listeners
from hive_streams.exceptions import ConfigError
from hive_streams.settings import Settings

ip = ipaddress.ip_address
NOT_LOCAL = EgressPolicy(local=lambda address: False)


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd00::1", "private"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"),
    ("0.0.0.0", "private"), ("100.64.0.1", "not a public"), ("224.0.0.1", "multicast"),
])
def test_non_public_addresses_are_denied(address, kind):
    assert kind in NOT_LOCAL.verdict(address, 80)


def test_public_addresses_are_allowed():
    assert NOT_LOCAL.verdict("93.184.216.34", 443) == ""
    assert NOT_LOCAL.verdict("2606:2800:220:1:248:1893:25c8:1946", 80) == ""


def test_allow_list_by_address_network_and_port():
    policy = NOT_LOCAL.allowing("127.0.0.1:8123", "10.0.0.0/8", "[::1]:9000")
    assert policy.verdict("127.0.0.1", 8123) == "" and "loopback" in policy.verdict("127.0.0.1", 8124)
    assert policy.verdict("10.9.9.9", 1) == ""
    assert policy.verdict("::1", 9000) == "" and policy.verdict("::1", 9001)


def test_rule_parsing():
    assert Rule.parse("10.0.0.0/8") == Rule(ipaddress.ip_network("10.0.0.0/8"))
    assert Rule.parse(" 127.0.0.1:80 ") == Rule(ipaddress.ip_network("127.0.0.1/32"), 80)
    assert Rule.parse("[fd00::/8]:443") == Rule(ipaddress.ip_network("fd00::/8"), 443)
    assert Rule.parse("::1") == Rule(ipaddress.ip_network("::1/128"))
    for bad in ("example.org", "10.0.0.0/33", "1.2.3.4:http"):
        with pytest.raises(ConfigError, match="HIVE_EGRESS_ALLOW"):
            Rule.parse(bad)


def test_the_fabrics_own_listeners_stay_denied_unless_their_port_is_named():
    s = Settings(api_host="0.0.0.0", api_port=8080, kafka_bootstrap="127.0.0.1:39092", postgres_port=55732,
                 database_url="postgresql://u:p@10.0.0.5:6543/db")
    listeners = fabric_listeners(s)
    assert (None, 8080) in listeners and (ip("127.0.0.1"), 39092) in listeners and (ip("10.0.0.5"), 6543) in listeners
    policy = EgressPolicy(listeners=listeners, local=lambda address: address == ip("203.0.113.7")).allowing(
        "10.0.0.0/8", "203.0.113.7")
    assert "fabric's own listeners" in policy.verdict("203.0.113.7", 8080)  # the API on a public address
    assert policy.verdict("203.0.113.7", 8081) == ""
    assert "fabric's own listeners" in policy.verdict("10.0.0.5", 6543)  # a broad entry does not open it
    assert policy.allowing("10.0.0.5:6543").verdict("10.0.0.5", 6543) == ""


async def test_urls_are_checked_after_resolution():
    for url in ("http://localhost:1/", "http://2130706433/", "http://0x7f.1/", "http://[::1]/",
                "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(EgressDenied, match="denied by the egress policy"):
            await NOT_LOCAL.check(url)
    for url in ("file:///etc/passwd", "ftp://example.org/", "http://"):
        with pytest.raises(EgressDenied):
            await NOT_LOCAL.check(url)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/to/"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            self.send_response(200)
            self.end_headers()  # no length: the body streams until the connection closes
            try:
                for _ in range(64):
                    self.wfile.write(b"x" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading at its cap and hung up: what the test wants
        else:
            body = f"host={self.headers['Host']} auth={self.headers.get('Authorization')}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def test_an_allow_listed_server_is_fetched_with_its_host_header(server):
    policy = EgressPolicy().allowing(server)
    response = await policy.fetch("GET", f"http://{server}/hello", headers={"Host": "evil", "Authorization": "t"})
    assert response.status == 200 and response.body == f"host={server} auth=t".encode()
    with pytest.raises(EgressDenied):
        await EgressPolicy().fetch("GET", f"http://{server}/hello")


async def test_every_redirect_is_checked(server):
    policy = EgressPolicy().allowing(server)
    followed = await policy.fetch("GET", f"http://{server}/to/http://{server}/end")
    assert followed.body.startswith(b"host=") and followed.url.endswith("/end")
    with pytest.raises(EgressDenied, match="169.254.169.254"):
        await policy.fetch("GET", f"http://{server}/to/http://169.254.169.254/latest/meta-data/")
    with pytest.raises(EgressDenied, match="loopback"):
        await policy.fetch("GET", f"http://{server}/to/http://127.0.0.1:1/")
    loop = f"http://{server}/to/" * 7 + f"http://{server}/end"
    with pytest.raises(EgressError, match="more than 5 redirects"):
        await policy.fetch("GET", loop)


async def test_credentials_are_dropped_on_a_redirect_elsewhere(server):
    port = server.rsplit(":", 1)[1]
    other = f"localhost:{port}"  # another origin on the same server
    policy = EgressPolicy().allowing(server, f"[::1]:{port}")
    response = await policy.fetch("GET", f"http://{server}/to/http://{other}/end", headers={"Authorization": "t"})
    assert response.body == f"host={other} auth=None".encode()


async def test_responses_are_capped_while_read(server):
    policy = EgressPolicy(max_bytes=100_000).allowing(server)
    with pytest.raises(EgressError, match="over the limit of 100000 bytes"):
        await policy.fetch("GET", f"http://{server}/big")
