"""ctrack's API over TLS with an HTTP Basic user, as a RouterOS `www-ssl`
client meets it: `requests` verifying the certificate, and rosrestpy. Run by
tests/tests/rest_clients.rs: argv is the https base URL, the user, the
password, the certificate file and the number of connections listed.
Prints one JSON object of findings; a failed check exits 1."""

import json
import sys

import requests

base, user, password, cert, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
conn = base + "/rest/ip/firewall/connection"
found = {}

r = requests.get(conn, verify=cert, timeout=30)
assert r.status_code == 401, r.status_code
assert "Basic" in r.headers.get("WWW-Authenticate", ""), r.headers
assert r.json()["message"] == "Unauthorized", r.text
r = requests.get(conn, auth=(user, password + "x"), verify=cert, timeout=30)
assert r.status_code == 401, r.status_code
rows = requests.get(conn, auth=(user, password), verify=cert, timeout=30).json()
assert len(rows) == n, len(rows)
found["listed"] = len(rows)

# Plain HTTP on the TLS port is not answered.
try:
    plain = requests.get(conn.replace("https://", "http://"), auth=(user, password), timeout=30)
    found["plain"] = plain.status_code
except requests.exceptions.RequestException:
    found["plain"] = "refused"

from ros import Ros  # noqa: E402

ros = Ros(base + "/", user, password)
conns = ros.ip.firewall.connection()
assert len(conns) == n, len(conns)
found["rosrestpy"] = len(conns)
print(json.dumps(found))
