//! Small servers and clients the connection-helper tests run in their
//! namespaces (Debian has no FTP server package on these machines): Python
//! scripts, written to a file and run with `python3`.

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
