#!/usr/bin/env python3
"""Turn `conntrack -L -o xml` output into a ctrack fixture, and cross-check it
against the capture it belongs to.

Used by scripts/make-linux-fixtures.sh; see docs/fixtures.md.

  conntrack-xml-to-json.py --name NAME --xml ct4.xml [--xml ct6.xml]
      --pcap NAME.pcap --out-xml NAME.conntrack.xml --out-json NAME.expected.json
      [--out-meta NAME.meta.json] [--nft nft.json] [--description TEXT]

  conntrack-xml-to-json.py --check DIR     re-run the cross-check on every
                                           fixture in DIR (no root needed)

expected.json: a JSON array, one object per conntrack entry, with ctrack's
(RouterOS) property names.  The cross-check parses the pcap, gives every packet
to the entry whose original or reply tuple it carries, and requires that each
entry's orig/repl packet and byte counters equal what the capture holds.
Packets no entry claims are listed in meta.json with the reason.
"""
import argparse
import ipaddress
import json
import os
import re
import struct
import sys
import xml.etree.ElementTree as ET

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}


# ---------------------------------------------------------------- conntrack XML
def read_flows(paths):
    """Return (flow element texts, parsed flow elements) from conntrack XML files."""
    texts, elems = [], []
    for p in paths:
        raw = open(p, encoding="utf-8").read()
        for m in re.finditer(r"<flow>.*?</flow>", raw, re.S):
            texts.append(m.group(0))
            elems.append(ET.fromstring(m.group(0)))
    return texts, elems


# Linux state names -> ctrack / RouterOS names.
TCP_STATES = {
    "NONE": "none", "SYN_SENT": "syn-sent", "SYN_RECV": "syn-received",
    "ESTABLISHED": "established", "FIN_WAIT": "fin-wait", "CLOSE_WAIT": "close-wait",
    "LAST_ACK": "last-ack", "TIME_WAIT": "time-wait", "CLOSE": "close",
    "SYN_SENT2": "syn-sent",
}

# ICMP type/code/id per conntrack entry id, from the text listing
# (`conntrack -L -o extended,id`): the XML output leaves them out.
ICMP_INFO = {}


def read_text_listing(paths):
    for p in paths:
        for line in open(p, encoding="utf-8"):
            toks = [t.split("=", 1) for t in line.split() if "=" in t]
            srcs = [i for i, (k, _v) in enumerate(toks) if k == "src"]
            if len(srcs) < 2:
                continue
            ct_id = None
            for i, (k, v) in enumerate(toks):
                if k == "use" and i + 1 < len(toks) and toks[i + 1][0] == "id":
                    ct_id = toks[i + 1][1]
            if ct_id is None:
                continue

            def part(a, b):
                d = {}
                for k, v in toks[a:b]:
                    if k in ("type", "code", "id") and k not in d:
                        d[k] = int(v)
                return d
            o, r = part(srcs[0], srcs[1]), part(srcs[1], len(toks))
            if "type" in o:
                ICMP_INFO[ct_id] = (o, r)


def addr_port(proto, addr, port):
    if proto in ("tcp", "udp"):
        if ":" in addr:
            return "[%s]:%d" % (addr, port)
        return "%s:%d" % (addr, port)
    return addr


def parse_flow(flow):
    metas = {m.get("direction"): m for m in flow.findall("meta")}
    o, r, ind = metas["original"], metas["reply"], metas.get("independent")

    def tuple_of(m):
        l3, l4 = m.find("layer3"), m.find("layer4")
        t = {
            "l3": l3.get("protoname"),
            "src": str(ipaddress.ip_address(l3.findtext("src"))),
            "dst": str(ipaddress.ip_address(l3.findtext("dst"))),
            "protonum": int(l4.get("protonum")),
            "protoname": l4.get("protoname"),
        }
        for k in ("sport", "dport", "type", "code", "id"):
            v = l4.findtext(k)
            if v is not None:
                t[k] = int(v)
        c = m.find("counters")
        t["packets"] = int(c.findtext("packets")) if c is not None else None
        t["bytes"] = int(c.findtext("bytes")) if c is not None else None
        return t

    ot, rt = tuple_of(o), tuple_of(r)
    ct_id = ind.findtext("id") if ind is not None else None
    if ct_id in ICMP_INFO:
        for k, v in ICMP_INFO[ct_id][0].items():
            ot.setdefault(k, v)
        for k, v in ICMP_INFO[ct_id][1].items():
            rt.setdefault(k, v)
    state = ind.findtext("state") if ind is not None else None
    assured = ind is not None and ind.find("assured") is not None
    unreplied = ind is not None and ind.find("unreplied") is not None
    timeout = ind.findtext("timeout") if ind is not None else None
    return ot, rt, state, assured, unreplied, timeout


def to_entry(flow):
    ot, rt, state, assured, unreplied, _timeout = parse_flow(flow)
    proto = PROTO_NAMES.get(ot["protonum"], ot["protoname"] or str(ot["protonum"]))
    e = {"protocol": proto}
    e["src-address"] = addr_port(proto, ot["src"], ot.get("sport"))
    e["dst-address"] = addr_port(proto, ot["dst"], ot.get("dport"))
    e["reply-src-address"] = addr_port(proto, rt["src"], rt.get("sport"))
    e["reply-dst-address"] = addr_port(proto, rt["dst"], rt.get("dport"))
    if proto == "tcp":
        e["tcp-state"] = TCP_STATES.get(state, (state or "").lower().replace("_", "-"))
    if proto in ("icmp", "icmpv6"):
        e["icmp-id"] = ot.get("id")
        e["icmp-type"] = ot.get("type")
        e["icmp-code"] = ot.get("code")
    e["orig-packets"] = ot["packets"]
    e["orig-bytes"] = ot["bytes"]
    e["repl-packets"] = rt["packets"]
    e["repl-bytes"] = rt["bytes"]
    e["assured"] = assured
    e["seen-reply"] = not unreplied
    return e


def sort_key(e):
    return (e["protocol"], e["src-address"], e["dst-address"])


# ------------------------------------------------------------------------ pcap
def read_pcap(path):
    data = open(path, "rb").read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise SystemExit("%s: not a classic pcap file" % path)
    linktype = struct.unpack(end + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit("%s: link type %d, expected Ethernet (1)" % (path, linktype))
    off, pkts = 24, []
    while off + 16 <= len(data):
        _s, _us, incl, orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        pkts.append((data[off:off + incl], orig))
        off += incl
    return pkts


def l4_info(proto, b, l3):
    """Fields of an L4 header: ports, or ICMP type/code/id."""
    d = {"proto": proto}
    if proto in (6, 17) and len(b) >= 4:
        d["sport"], d["dport"] = struct.unpack("!HH", b[:4])
        if proto == 6 and len(b) >= 14:
            fl = b[13]
            d["flags"] = "".join(c for c, bit in
                                 (("F", 1), ("S", 2), ("R", 4), ("P", 8), (".", 16)) if fl & bit)
    elif proto in (1, 58) and len(b) >= 4:
        d["type"], d["code"] = b[0], b[1]
        if len(b) >= 8:
            d["id"] = struct.unpack("!H", b[4:6])[0]
        errors = (3, 4, 5, 11, 12) if proto == 1 else (1, 2, 3, 4)
        if d["type"] in errors:
            inner = parse_ip(b[8:])
            if inner:
                d["inner"] = inner
    return d


def parse_ip(b):
    if len(b) < 1:
        return None
    v = b[0] >> 4
    if v == 4 and len(b) >= 20:
        ihl = (b[0] & 15) * 4
        tot = struct.unpack("!H", b[2:4])[0]
        proto = b[9]
        src = str(ipaddress.ip_address(b[12:16]))
        dst = str(ipaddress.ip_address(b[16:20]))
        frag = struct.unpack("!H", b[6:8])[0] & 0x3FFF
        d = {"l3": 4, "src": src, "dst": dst, "len": tot}
        if frag:
            d["fragment"] = True
        d.update(l4_info(proto, b[ihl:], 4))
        return d
    if v == 6 and len(b) >= 40:
        plen = struct.unpack("!H", b[4:6])[0]
        nh = b[6]
        src = str(ipaddress.ip_address(b[8:24]))
        dst = str(ipaddress.ip_address(b[24:40]))
        off = 40
        while nh in (0, 43, 60) and off + 8 <= len(b):
            nh, hl = b[off], (b[off + 1] + 1) * 8
            off += hl
        d = {"l3": 6, "src": src, "dst": dst, "len": plen + 40}
        d.update(l4_info(nh, b[off:], 6))
        return d
    return None


def parse_frame(frame):
    if len(frame) < 14:
        return None
    et = struct.unpack("!H", frame[12:14])[0]
    off = 14
    while et in (0x8100, 0x88A8) and len(frame) >= off + 4:
        et = struct.unpack("!H", frame[off + 2:off + 4])[0]
        off += 4
    if et not in (0x0800, 0x86DD):
        return {"ethertype": et}
    return parse_ip(frame[off:])


def pkt_key(p):
    """Tuple key of a packet as conntrack would see it (src, dst, l4 fields)."""
    proto = p.get("proto")
    if proto in (6, 17):
        return (proto, p["src"], p.get("sport"), p["dst"], p.get("dport"))
    if proto in (1, 58):
        return (proto, p["src"], p.get("type"), p["dst"], p.get("id"))
    return (proto, p["src"], None, p["dst"], None)


def flow_keys(flow):
    ot, rt, *_ = parse_flow(flow)

    def k(t):
        if t["protonum"] in (6, 17):
            return (t["protonum"], t["src"], t.get("sport"), t["dst"], t.get("dport"))
        if t["protonum"] in (1, 58):
            return (t["protonum"], t["src"], t.get("type"), t["dst"], t.get("id"))
        return (t["protonum"], t["src"], None, t["dst"], None)
    return k(ot), k(rt)


def summary(p):
    if p is None:
        return "unparsed"
    if "ethertype" in p:
        return "ethertype 0x%04x" % p["ethertype"]
    proto = PROTO_NAMES.get(p.get("proto"), str(p.get("proto")))
    if p.get("proto") in (6, 17):
        s = "%s %s:%s > %s:%s" % (proto, p["src"], p.get("sport"), p["dst"], p.get("dport"))
        if "flags" in p:
            s += " [%s]" % p["flags"]
    else:
        s = "%s %s > %s type %s code %s" % (proto, p["src"], p["dst"], p.get("type"), p.get("code"))
        if "id" in p and "inner" not in p:
            s += " id %d" % p["id"]
    return s + " len %d" % p["len"]


def cross_check(flows, pcap_path):
    pkts = read_pcap(pcap_path)
    idx = {}
    counts = []
    for i, f in enumerate(flows):
        ko, kr = flow_keys(f)
        idx[ko] = (i, "orig")
        idx[kr] = (i, "repl")
        counts.append({"orig-packets": 0, "orig-bytes": 0, "repl-packets": 0, "repl-bytes": 0})
    untracked = []
    for n, (frame, _orig_len) in enumerate(pkts, 1):
        p = parse_frame(frame)
        hit = idx.get(pkt_key(p)) if p and "src" in p else None
        if hit:
            i, d = hit
            counts[i][d + "-packets"] += 1
            counts[i][d + "-bytes"] += p["len"]
            continue
        reason = "no conntrack entry"
        if p and "inner" in p:
            inner = p["inner"]
            ik = pkt_key(inner)
            if ik in idx:
                e = to_entry(flows[idx[ik][0]])
                reason = ("ICMP error, RELATED to the %s entry %s -> %s; "
                          "Linux counts it in no entry's counters"
                          % (e["protocol"], e["src-address"], e["dst-address"]))
        elif p and p.get("proto") == 6 and "R" in p.get("flags", ""):
            reason = "TCP RST answering an unreplied SYN: Linux deleted the entry at once"
        elif p and p.get("proto") == 6 and p.get("flags") == "S":
            reason = "TCP SYN whose entry Linux deleted when the RST came back"
        untracked.append({"packet": n, "summary": summary(p), "reason": reason})
    mismatches = []
    for i, f in enumerate(flows):
        e = to_entry(f)
        for k, v in counts[i].items():
            if e[k] != v:
                mismatches.append("%s %s -> %s: %s conntrack=%s pcap=%s"
                                  % (e["protocol"], e["src-address"], e["dst-address"], k, e[k], v))
    return len(pkts), counts, untracked, mismatches


def nft_counters(path):
    try:
        doc = json.load(open(path))
    except (OSError, ValueError):
        return None
    out = {}
    for item in doc.get("nftables", []):
        rule = item.get("rule")
        if not rule:
            continue
        state, cnt = None, None
        for ex in rule.get("expr", []):
            m = ex.get("match")
            if m and m.get("left", {}).get("ct", {}).get("key") == "state":
                state = m.get("right")
                if isinstance(state, list):
                    state = ",".join(state)
            if "counter" in ex:
                cnt = ex["counter"].get("packets")
        if state is not None and cnt is not None:
            out[state] = cnt
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name")
    ap.add_argument("--description", default="")
    ap.add_argument("--xml", action="append", default=[])
    ap.add_argument("--txt", action="append", default=[])
    ap.add_argument("--out-txt")
    ap.add_argument("--pcap")
    ap.add_argument("--nft")
    ap.add_argument("--out-xml")
    ap.add_argument("--out-json")
    ap.add_argument("--out-meta")
    ap.add_argument("--check", metavar="DIR")
    a = ap.parse_args()

    if a.check:
        bad = 0
        for fn in sorted(os.listdir(a.check)):
            if not fn.endswith(".conntrack.xml"):
                continue
            name = fn[: -len(".conntrack.xml")]
            txt = os.path.join(a.check, name + ".conntrack.txt")
            if os.path.exists(txt):
                read_text_listing([txt])
            _t, flows = read_flows([os.path.join(a.check, fn)])
            n, _c, untracked, mism = cross_check(flows, os.path.join(a.check, name + ".pcap"))
            exp = json.load(open(os.path.join(a.check, name + ".expected.json")))
            got = sorted((to_entry(f) for f in flows), key=sort_key)
            same = exp == got
            print("%-16s %3d packets, %2d entries, %2d untracked, %s%s"
                  % (name, n, len(flows), len(untracked),
                     "json ok" if same else "JSON DIFFERS",
                     "" if not mism else ", MISMATCH: " + "; ".join(mism)))
            bad += (not same) + len(mism)
        sys.exit(1 if bad else 0)

    texts, flows = read_flows(a.xml)
    read_text_listing(a.txt)
    if a.out_txt:
        with open(a.out_txt, "w", encoding="utf-8") as f:
            for p in a.txt:
                f.write(open(p, encoding="utf-8").read())
    with open(a.out_xml, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<conntrack>\n')
        for t in texts:
            f.write(t + "\n")
        f.write("</conntrack>\n")

    entries = sorted((to_entry(f) for f in flows), key=sort_key)
    with open(a.out_json, "w") as f:
        json.dump(entries, f, indent=2)
        f.write("\n")

    n, _counts, untracked, mism = cross_check(flows, a.pcap)
    tracked = sum(e["orig-packets"] + e["repl-packets"] for e in entries)
    if a.out_meta:
        meta = {
            "name": a.name,
            "description": a.description,
            "kernel": os.uname().release,
            "pcap-packets": n,
            "entries": len(entries),
            "packets-counted-in-entries": tracked,
            "untracked-packets": untracked,
            "router-nft-ct-state-counters": nft_counters(a.nft) if a.nft else None,
            "counters-match-pcap": not mism,
        }
        with open(a.out_meta, "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
    print("  %-16s %3d packets in pcap, %2d entries, %3d packets counted, %d untracked"
          % (a.name, n, len(entries), tracked, len(untracked)), file=sys.stderr)
    for u in untracked:
        print("    untracked #%d %s: %s" % (u["packet"], u["summary"], u["reason"]), file=sys.stderr)
    if mism:
        for m in mism:
            print("    MISMATCH " + m, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
