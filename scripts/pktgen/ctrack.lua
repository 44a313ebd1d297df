-- Traffic for benchmarking a connection tracker with pktgen-dpdk 23.06 (Lua).
-- See docs/benchmarks-pktgen.md. Run by scripts/bench-pktgen.sh:
--   pktgen ... -- -P -m "[1:1].0,[1:1].1" -f scripts/pktgen/ctrack.lua
--
-- Port 0 sends the original direction, port 1 the replies (the mirrored
-- tuples), so a tracker between them sees each connection both ways and
-- marks it seen-reply/assured. Parameters come from the environment:
--
--   CT_MODE     conns   N connections, both directions (range mode)
--               cps     new connections: every packet a new tuple (random
--                       source address and port bits; port 0 only)
--               latency conns plus pktgen's latency packets on port 0
--   CT_CONNS    distinct connections in conns/latency mode (default 4096).
--               Range packets are built once into the TX mempool, so one
--               queue cycles through at most 24576 of them.
--   CT_PROTO    udp | tcp (tcp: ACK segments, which a tracker with loose
--               TCP tracking picks up as established connections)
--   CT_FAMILY   ipv4 | ipv6
--   CT_SIZE     64 | imix (imix: the sizes 64, 782 and 1500 in turn)
--   CT_RATE     percent of the port's rate (default 100)
--   CT_WARMUP   seconds before counting (default 2)
--   CT_SECONDS  seconds counted (default 10)
--
-- It prints one line that the script parses:
--   CTRACK_PKTGEN mode=conns seconds=10 tx0=... rx0=... tx1=... rx1=... ...
-- and quits pktgen.

-- Self-contained: pktgen's own Pktgen.lua helpers are not needed (nor on
-- the path when pktgen runs from another directory).
local function printf(...)
    io.write(string.format(...))
    io.flush()
end

local function env(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then return default end
    return v
end

local mode = env("CT_MODE", "conns")
local conns = tonumber(env("CT_CONNS", "4096"))
local proto = env("CT_PROTO", "udp")
local family = env("CT_FAMILY", "ipv4")
local size = env("CT_SIZE", "64")
local rate = tonumber(env("CT_RATE", "100"))
local warmup = tonumber(env("CT_WARMUP", "2"))
local seconds = tonumber(env("CT_SECONDS", "10"))

-- The two endpoints: A behind port 0 (clients), B behind port 1 (servers).
local A, B
if family == "ipv6" then
    A, B = "fd00:a::1", "fd00:b::1"
else
    A, B = "10.10.0.1", "10.20.0.1"
end
local SERVER_PORT = 9
local FIRST_PORT = 1024

if conns < 1 or FIRST_PORT + conns - 1 > 65535 then
    printf("CTRACK_PKTGEN error=bad CT_CONNS %s\n", tostring(conns))
    pktgen.quit()
end

-- One port's range: fixed addresses, the client port counting through
-- CT_CONNS values, the server port fixed; port 1 is the mirror image.
local function field(fn, port, start, inc, min, max)
    fn(port, "start", start)
    fn(port, "inc", inc)
    fn(port, "min", min)
    fn(port, "max", max)
end

local function setup_range(port, src, dst, sport_range)
    pktgen.range.set_type(port, family)
    pktgen.range.ip_proto(port, proto)
    field(pktgen.range.src_ip, port, src, family == "ipv6" and "::" or "0.0.0.0", src, src)
    field(pktgen.range.dst_ip, port, dst, family == "ipv6" and "::" or "0.0.0.0", dst, dst)
    local last = FIRST_PORT + conns - 1
    if sport_range then
        field(pktgen.range.src_port, port, FIRST_PORT, 1, FIRST_PORT, last)
        field(pktgen.range.dst_port, port, SERVER_PORT, 0, SERVER_PORT, SERVER_PORT)
    else
        field(pktgen.range.src_port, port, SERVER_PORT, 0, SERVER_PORT, SERVER_PORT)
        field(pktgen.range.dst_port, port, FIRST_PORT, 1, FIRST_PORT, last)
    end
    if size == "imix" then
        -- pktgen steps a range evenly by `inc` and wraps past `max`:
        -- 64, 782, 1500 in turn.
        field(pktgen.range.pkt_size, port, 64, 718, 64, 1500)
    else
        local n = tonumber(size)
        field(pktgen.range.pkt_size, port, n, 0, n, n)
    end
    pktgen.set(port, "rate", rate)
    pktgen.set_range(port, "on")
end

local function setup_cps()
    -- Single-packet mode on port 0 with random bits: the low 16 bits of
    -- the source address and the whole source port change per packet
    -- (2^32 tuples). Random bits do not fix checksums: run the tracker
    -- with checksum verification off for this mode.
    pktgen.set_type(0, family)
    pktgen.set_proto(0, proto)
    pktgen.set_ipaddr(0, "src", family == "ipv6" and (A .. "/64") or (A .. "/24"))
    pktgen.set_ipaddr(0, "dst", B)
    pktgen.set(0, "sport", FIRST_PORT)
    pktgen.set(0, "dport", SERVER_PORT)
    pktgen.set(0, "size", size == "imix" and 64 or tonumber(size))
    pktgen.set(0, "rate", rate)
    local src_low, sport
    if family == "ipv6" then
        -- 14 (Ethernet) + 8 + 14: the last 2 bytes of the source address;
        -- 14 + 40: the source port.
        src_low, sport = 36, 54
    else
        -- 14 + 12 + 2: the low 2 bytes of the source address; 14 + 20.
        src_low, sport = 28, 34
    end
    pktgen.rnd(0, 0, src_low, "XXXXXXXXXXXXXXXX................")
    pktgen.rnd(0, 1, sport, "XXXXXXXXXXXXXXXX................")
    pktgen.set(0, "rnd", "on")
end

pktgen.stop("all")
pktgen.clr()
if mode == "cps" then
    setup_cps()
else
    setup_range(0, A, B, true)
    setup_range(1, B, A, false)
    if mode == "latency" then
        pktgen.latency(0, "rate", 1000)
        pktgen.latency(0, "enable")
    end
end

-- Originals first, then replies.
pktgen.start(0)
pktgen.delay(100)
if mode ~= "cps" then
    pktgen.start(1)
end
pktgen.sleep(warmup)
pktgen.clr()
local t0 = os.time()
pktgen.sleep(seconds)
local stats = pktgen.portStats("all", "port")
local elapsed = os.time() - t0
pktgen.stop("all")

local out = string.format("CTRACK_PKTGEN mode=%s proto=%s family=%s size=%s conns=%d seconds=%d",
    mode, proto, family, size, conns, elapsed)
for port = 0, 1 do
    local s = stats[port]
    if s ~= nil then
        out = out .. string.format(" tx%d=%d rx%d=%d missed%d=%d rxerr%d=%d",
            port, s.opackets, port, s.ipackets, port, s.imissed, port, s.ierrors)
    end
end
if mode == "latency" then
    local p = pktgen.pktStats(0)
    if p ~= nil and p[0] ~= nil and p[0].latency ~= nil then
        local l = p[0].latency
        out = out .. string.format(" lat_pkts=%d lat_avg_us=%s lat_max_us=%s",
            l.num_pkts or 0, tostring(l.avg_us or ""), tostring(l.max_us or ""))
    end
end
printf("%s\n", out)
pktgen.quit()
