//! Small servers and clients the connection-helper tests run in their
//! namespaces (Debian has no FTP server package on these machines): Python
//! scripts, written to a file and run with `python3`; and the transfers
//! and table checks the helper tests through NAT share.

use crate::netns::Topology;
use crate::{Running, show};

/// A small FTP server: `python3 ftp.py HOST PORT SECONDS`. USER, PASS,
/// PWD, CWD, TYPE, SIZE, EPSV, PASV, PORT, EPRT, RETR (the file is
/// `bytes(range(256)) * 400`), QUIT; it also listens on port 2100, which
/// nobody announces (a firewall must drop connections to it). Prints
/// `ready` once listening.
pub const FTP_SERVER: &str = r#"
import socket, sys, threading, time
host, port, life = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
DATA = bytes(range(256)) * 400
def handle(c):
    f = c.makefile('rb')
    def say(s): c.sendall((s + "\r\n").encode())
    say("220 ctrack test ftp")
    pasv = None; active = None
    while True:
        line = f.readline()
        if not line: break
        line = line.decode().strip()
        cmd, _, arg = line.partition(' ')
        cmd = cmd.upper()
        if cmd == 'USER': say('331 ok')
        elif cmd == 'PASS': say('230 logged in')
        elif cmd == 'PWD': say('257 "/"')
        elif cmd in ('CWD', 'TYPE', 'MODE', 'STRU'): say('200 ok')
        elif cmd == 'SIZE': say('213 %d' % len(DATA))
        elif cmd in ('EPSV', 'PASV'):
            pasv = socket.socket(fam); pasv.bind((host, 0)); pasv.listen(1)
            p = pasv.getsockname()[1]
            if cmd == 'EPSV': say('229 Entering Extended Passive Mode (|||%d|)' % p)
            else: say('227 Entering Passive Mode (%s,%d,%d).' % (host.replace('.', ','), p >> 8, p & 255))
        elif cmd == 'PORT':
            n = arg.split(','); active = ('.'.join(n[:4]), int(n[4]) * 256 + int(n[5])); say('200 ok')
        elif cmd == 'EPRT':
            d = arg[0]; parts = arg.split(d); active = (parts[2], int(parts[3])); say('200 ok')
        elif cmd == 'RETR':
            try:
                if pasv:
                    pasv.settimeout(10); d, _ = pasv.accept(); pasv.close(); pasv = None
                elif active:
                    d = socket.create_connection(active, timeout=10); active = None
                else:
                    say('425 no data connection'); continue
            except OSError:
                say('425 cannot open data connection'); continue
            say('150 sending')
            d.sendall(DATA); d.close(); say('226 done')
        elif cmd == 'QUIT': say('221 bye'); break
        else: say('502 not implemented')
    c.close()
s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(8)
# A plain listener that nobody announces: the firewall must drop its SYNs.
o = socket.socket(fam); o.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
o.bind((host, 2100)); o.listen(8)
threading.Thread(target=lambda: [handle(s.accept()[0]) for _ in iter(int, 1)], daemon=True).start()
print("ready", flush=True)
time.sleep(life)
"#;

/// TFTP: `python3 tftp.py server HOST SECONDS` answers one read request
/// from a port of its own (RFC 1350); `python3 tftp.py client HOST` reads
/// `bytes(range(256)) * 5` and prints `tftp ok`.
pub const TFTP: &str = r#"
import socket, struct, sys, time
mode, host = sys.argv[1], sys.argv[2]
DATA = bytes(range(256)) * 5
if mode == 'server':
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((host, 69))
    print("ready", flush=True)
    s.settimeout(float(sys.argv[3]))
    try:
        req, peer = s.recvfrom(1500)
    except socket.timeout:
        sys.exit(0)
    assert struct.unpack('!H', req[:2])[0] == 1, req
    # RFC 1350: the answer comes from a port of the server's own.
    t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); t.bind((host, 0)); t.settimeout(5)
    block = 1
    for off in range(0, len(DATA) + 1, 512):
        t.sendto(struct.pack('!HH', 3, block) + DATA[off:off + 512], peer)
        ack, _ = t.recvfrom(100)
        block += 1
else:
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.settimeout(5)
    c.sendto(b'\x00\x01file\x00octet\x00', (host, 69))
    got = b''
    while True:
        pkt, peer = c.recvfrom(1500)
        op, block = struct.unpack('!HH', pkt[:4])
        got += pkt[4:]
        c.sendto(struct.pack('!HH', 4, block), peer)
        if len(pkt) - 4 < 512: break
    assert got == DATA, len(got)
    print("tftp ok", len(got), flush=True)
"#;

/// PPTP calls from real sockets (the kernel has no PPP): `pptp.py pac PEER ME
/// NATADDR RESULT` is a PAC that takes two calls from `NATADDR` and writes
/// its verdict to `RESULT`; `pptp.py pns PAC ADDR...` runs one PNS per
/// address. Two PNS (two addresses, one thread each) behind one
/// source-NAT address, both with call id 0x1234, to one PAC in B. The PAC
/// sees two different call ids (the translated ones), answers each PNS's
/// GRE to the one source-NAT address, and each PNS gets only its own GRE
/// back with its own call id; the PAC gets each PNS's GRE from the
/// source-NAT address with its own call id of that call. The call serial
/// number (set by each PNS) tags which call a GRE payload is for.
pub const PPTP_CALLS: &str = r#"
import socket, struct, sys, threading
role, peer = sys.argv[1], sys.argv[2]
SIZES = {1: 144, 2: 144, 5: 4, 7: 156, 8: 20}
def msg(t, body):
    body = body + b'\0' * (SIZES[t] - len(body))
    return struct.pack('!HHIHH', 12 + len(body), 1, 0x1A2B3C4D, t, 0) + body
def read(s):
    h = b''
    while len(h) < 12: h += s.recv(12 - len(h))
    n, _, cookie, t, _ = struct.unpack('!HHIHH', h)
    assert cookie == 0x1A2B3C4D
    b = b''
    while len(b) < n - 12: b += s.recv(n - 12 - len(b))
    return t, b
def gre(call, payload):
    return struct.pack('!HHHHI', 0x3001, 0x880b, len(payload), call, 1) + payload
def gre_recv(raw, src, want):
    # The first GRE from `src` whose (call id, payload) is in `want`; any
    # other from `src` is a failure (a GRE meant for another call).
    raw.settimeout(15)
    while True:
        pkt, addr = raw.recvfrom(2048)
        if addr[0] != src: continue
        g = pkt[(pkt[0] & 15) * 4:]
        flags, proto, plen, call = struct.unpack('!HHHH', g[:8])
        if flags & 7 != 1: continue
        got = (call, g[12:12 + plen])
        assert got in want, f"unexpected GRE {got}, wanted one of {want}"
        return got
PNS_CALL = 0x1234
def pac(me, masq):
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((me, 1723)); l.listen(2)
    print("ready", flush=True)
    l.settimeout(30)
    calls = {}
    for _ in range(2):
        s, a = l.accept()
        assert a[0] == masq, a
        assert read(s)[0] == 1
        s.sendall(msg(2, struct.pack('!HBB', 0x0100, 1, 0)))
        t, b = read(s); assert t == 7
        pns, serial = struct.unpack('!HH', b[:4])
        pac = 0xa000 + serial
        s.sendall(msg(8, struct.pack('!HHBB', pac, pns, 1, 0)))
        assert read(s)[0] == 5
        calls[serial] = (pns, pac, s)
    ids = sorted(c[0] for c in calls.values())
    assert ids[0] != ids[1], f"one call id for both: {ids}"
    for serial, (pns, pac, s) in calls.items():
        raw.sendto(gre(pns, b'for-%d' % serial), (masq, 0))
    want = {(pac, b'from-%d' % serial) for serial, (pns, pac, s) in calls.items()}
    while want:
        want.discard(gre_recv(raw, masq, want))
    return ids
if role == 'pac':
    # The verdict goes to a file (the test reads it; this runs in the
    # background).
    me, masq, result = sys.argv[3], sys.argv[4], sys.argv[5]
    try:
        text = f"pac ok {pac(me, masq)}"
    except Exception as e:
        text = f"pac failed: {e!r}"
    open(result + '.tmp', 'w').write(text)
    import os; os.rename(result + '.tmp', result)
else:
    mine = sys.argv[3:]
    errors = []
    def pns(me, serial):
        try:
            raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
            raw.bind((me, 0))
            s = socket.create_connection((peer, 1723), timeout=20, source_address=(me, 0))
            s.sendall(msg(1, struct.pack('!HBB', 0x0100, 0, 0)))
            assert read(s)[0] == 2
            s.sendall(msg(7, struct.pack('!HH', PNS_CALL, serial)))
            t, b = read(s); assert t == 8
            cid, pcid, result = struct.unpack('!HHB', b[:5])
            assert pcid == PNS_CALL, f"peer call id {pcid:#x} (not translated back)"
            assert result == 1 and cid == 0xa000 + serial, (cid, result)
            s.sendall(msg(5, b'\0\0\0\1'))
            gre_recv(raw, peer, {(PNS_CALL, b'for-%d' % serial)})
            raw.sendto(gre(cid, b'from-%d' % serial), (peer, 0))
            print(f"pns {serial} ok", flush=True)
        except Exception as e:
            errors.append(f"pns {serial}: {e!r}")
    ts = [threading.Thread(target=pns, args=(me, i + 1)) for i, me in enumerate(mine)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert not errors, errors
"#;

/// From namespace 0 of `topo`, curl fetches `ftp://SERVER/file` (the
/// [`FTP_SERVER`] in namespace 1) in passive (EPSV, PASV) and active
/// (EPRT, PORT) mode, then reads a file with [`TFTP`] (`tftp` is that
/// script's path; its server is started here): every transfer completes
/// with the whole file. `through` names the path for the messages.
pub fn ftp_and_tftp_transfers(
    topo: &Topology,
    run: &Running,
    server: &str,
    tftp: &str,
    through: &str,
) {
    let url = format!("ftp://{server}/file");
    for (what, extra) in [
        ("EPSV", &[][..]),
        ("PASV", &["--disable-epsv"][..]),
        ("EPRT", &["-P", "-"][..]),
        ("PORT", &["-P", "-", "--disable-eprt"][..]),
    ] {
        let mut args = vec!["curl", "-sS", "--max-time", "20", "-o", "-"];
        args.extend_from_slice(extra);
        args.push(&url);
        let out = topo.exec(0, 30, &args);
        if !out.status.success() {
            eprintln!("the table after FTP {what} failed: {:#?}", run.table());
        }
        assert!(
            out.status.success(),
            "FTP {what} through {through}:\n{}",
            show(&out)
        );
        assert_eq!(out.stdout.len(), 256 * 400, "FTP {what}: the whole file");
    }
    let _tftp_server = topo.spawn_ready(1, &["python3", tftp, "server", server, "30"], 20);
    let out = topo.exec(0, 20, &["python3", tftp, "client", server]);
    assert!(
        out.status.success(),
        "TFTP through {through}:\n{}",
        show(&out)
    );
}

/// The connection table after [`ftp_and_tftp_transfers`] from `client`
/// translated to `public`: four control connections `connection-type=ftp`,
/// source-NATed to `public`; four expected ftp data connections, the
/// passive two from the client source-NATed, the active two from `server`
/// to `public` destination-NATed to the client; the TFTP answer expected,
/// to `public`, destination-NATed to the client.
pub fn assert_helpers_translated(
    table: &[serde_json::Value],
    client: &str,
    server: &str,
    public: &str,
) {
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
    let of_type = |t: &str, expected: bool| -> Vec<&serde_json::Value> {
        table
            .iter()
            .filter(|r| field(r, "connection-type") == t && r["expected"] == expected)
            .collect()
    };
    let control = of_type("ftp", false);
    assert_eq!(control.len(), 4, "{table:#?}");
    assert!(
        control.iter().all(|r| r["srcnat"] == true
            && field(r, "reply-dst-address").starts_with(&format!("{public}:"))),
        "the control connections are translated: {control:#?}"
    );
    let data = of_type("ftp", true);
    assert_eq!(
        data.len(),
        4,
        "the four data connections, expected: {table:#?}"
    );
    let passive = data
        .iter()
        .filter(|r| {
            field(r, "src-address").starts_with(&format!("{client}:")) && r["srcnat"] == true
        })
        .count();
    let active = data
        .iter()
        .filter(|r| {
            field(r, "src-address").starts_with(&format!("{server}:"))
                && field(r, "dst-address").starts_with(&format!("{public}:"))
                && field(r, "reply-src-address").starts_with(&format!("{client}:"))
                && r["dstnat"] == true
        })
        .count();
    assert_eq!((passive, active), (2, 2), "{data:#?}");
    let tftp_data = of_type("tftp", true);
    assert_eq!(tftp_data.len(), 1, "{table:#?}");
    assert!(
        field(tftp_data[0], "dst-address").starts_with(&format!("{public}:"))
            && field(tftp_data[0], "reply-src-address").starts_with(&format!("{client}:"))
            && tftp_data[0]["dstnat"] == true,
        "{tftp_data:#?}"
    );
}
