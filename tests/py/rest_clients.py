"""Drives ctrack's REST API with `requests` and with rosrestpy (a RouterOS v7
REST client from PyPI), as an operator's script would. Run by
tests/tests/rest_clients.rs: argv is the API's base URL and the numbers of
TCP, UDP and ICMP connections it should list. Prints one JSON object of
findings; every check that fails is an assertion (exit status 1)."""

import json
import sys

import requests

base, n_tcp, n_udp, n_icmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
conn = base + "/rest/ip/firewall/connection"
found = {}

# A listing: RouterOS's row shape, every value a string.
rows = requests.get(conn, timeout=30).json()
assert len(rows) == n_tcp + n_udp + n_icmp, len(rows)
assert all(".id" in r and "id" not in r for r in rows), rows[0]
assert all(isinstance(v, str) for r in rows for v in r.values()), rows[0]
assert all(r["hw-offload"] == "false" for r in rows), rows[0]
found["listed"] = len(rows)

# .proplist on a GET.
picked = requests.get(conn, params={".proplist": ".id,protocol"}, timeout=30).json()
assert all(sorted(r) == [".id", "protocol"] for r in picked), picked[0]

# print with .proplist and .query (stack words).
udp_or_icmp = requests.post(
    conn + "/print",
    json={".proplist": [".id", "protocol"], ".query": ["protocol=udp", "protocol=icmp", "#|"]},
    timeout=30,
).json()
assert len(udp_or_icmp) == n_udp + n_icmp, len(udp_or_icmp)
assert {r["protocol"] for r in udp_or_icmp} == {"udp", "icmp"}
not_tcp = requests.post(conn + "/print", json={".query": ["protocol=tcp", "#!"]}, timeout=30).json()
assert len(not_tcp) == n_udp + n_icmp, len(not_tcp)
count = requests.post(
    conn + "/print", json={"count-only": "yes", ".query": ["protocol=tcp"]}, timeout=30
).json()
assert count == {"count": str(n_tcp)}, count
found["queried"] = len(udp_or_icmp)

# Errors as RouterOS: message is the status text, detail the specifics.
r = requests.get(conn + "/*ffffffffff", timeout=30)
err = r.json()
assert r.status_code == 404 and err["error"] == 404 and err["message"] == "Not Found", err
assert "*ffffffffff" in err["detail"], err
r = requests.post(conn + "/print", json={".query": ["bogus=1"]}, timeout=30)
assert r.status_code == 400 and "bogus" in r.json()["detail"], r.text
r = requests.put(conn, json={}, timeout=30)
assert r.status_code == 405 and r.json()["message"] == "Method Not Allowed", r.text

# Tracking: strings, set through the console command.
t = requests.get(conn + "/tracking", timeout=30).json()
assert all(isinstance(v, str) for v in t.values()), t
assert int(t["total-entries"]) == len(rows), t
t = requests.post(conn + "/tracking/set", json={"udp-timeout": "45m"}, timeout=30).json()
assert t["udp-timeout"] == "45m", t
found["tracking"] = t["udp-timeout"]

# remove with one .id, then a comma list.
udp = [r[".id"] for r in udp_or_icmp if r["protocol"] == "udp"]
r = requests.post(conn + "/remove", json={".id": udp[0]}, timeout=30)
assert r.status_code == 200 and r.json() == [], r.text
assert requests.get(conn + "/" + udp[0], timeout=30).status_code == 404
r = requests.post(conn + "/remove", json={".id": ",".join(udp[1:3])}, timeout=30)
assert r.status_code == 200, r.text
left = requests.post(conn + "/print", json={".query": ["protocol=udp"]}, timeout=30).json()
assert len(left) == n_udp - 3, len(left)
found["removed"] = 3

# rosrestpy: its connection model requires every property RouterOS v7
# lists (hw-offload among them) and reads every value from a string. It
# sends HTTP Basic credentials, which a loopback API without users accepts.
try:
    from ros import Ros
    from ros.error import Error as RosError
except ImportError as e:  # pragma: no cover - the test installs it
    found["rosrestpy"] = "missing: %s" % e
else:
    ros = Ros(base + "/", "admin", "")
    conns = ros.ip.firewall.connection()
    assert len(conns) == len(rows) - 3, len(conns)
    assert all(c.id.startswith("*") for c in conns), conns[0]
    assert sum(1 for c in conns if c.protocol == "tcp") == n_tcp
    assert all(c.orig_packets >= 1 for c in conns), conns[0]
    tcp = [c for c in conns if c.protocol == "tcp"]
    assert all(c.tcp_state == "established" for c in tcp), tcp[0]
    try:
        from ros.ip.firewall import IPConnection

        ros.get_as("/ip/firewall/connection/*ffffffffff", IPConnection)
        raise AssertionError("a missing connection did not raise")
    except RosError as e:
        assert e.error == 404 and e.message == "Not Found", e
    # rosrestpy's own remove() passes a relative URL to requests (a bug of
    # its 0.x releases): delete through its authenticated session instead.
    r = ros.session.delete(ros.url + "/ip/firewall/connection/" + tcp[0].id, timeout=30)
    assert r.status_code == 204, r.text
    after = ros.ip.firewall.connection()
    assert len(after) == len(conns) - 1, len(after)
    found["rosrestpy"] = len(conns)

    # The firewall filter menu: rosrestpy's model of a filter rule reads our
    # rows, and its add/disable go through (a rule that needs tracking, so
    # that `enabled=auto` keeps tracking on).
    from ros.ip.firewall import IPFirewallFilter

    flt = base + "/rest/ip/firewall/filter"
    r = requests.put(
        flt,
        json={"chain": "forward", "action": "drop", "connection-state": "invalid", "comment": "py"},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()[".id"].startswith("*"), r.text
    added = ros.ip.firewall.filter.add(
        IPFirewallFilter(chain="forward", action="accept", protocol="tcp", connection_state="new")
    )
    assert added.protocol == "tcp" and added.id.startswith("*"), added
    ros.ip.firewall.filter.disable(added)
    rules = ros.ip.firewall.filter()
    assert [(x.action, x.id) for x in rules] == [("drop", r.json()[".id"]), ("accept", added.id)]
    # rosrestpy reads any non-empty string as a true bool (RouterOS's
    # "false" too): the flags are checked on the rows themselves.
    flags = [x["disabled"] for x in requests.get(flt, timeout=30).json()]
    assert flags == ["false", "true"], flags
    assert rules[0].comment == "py" and rules[0].bytes == 0 and rules[0].packets == 0, rules[0]
    r = requests.put(flt, json={"chain": "forward", "action": "dorp"}, timeout=30)
    assert r.status_code == 400 and "dorp" in r.json()["detail"], r.text
    found["filter"] = len(rules)

print(json.dumps(found))
