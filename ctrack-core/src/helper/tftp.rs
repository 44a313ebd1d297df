//! TFTP (RFC 1350), as Linux's `nf_conntrack_tftp`: a read or write
//! request (opcode 1 or 2) on a connection to the service port expects the
//! server's answer, which comes from a port of its own choosing to the
//! client's port: an expectation with the source port open. Data,
//! acknowledgements and errors on the request's own connection create
//! nothing.

/// Read request.
pub const OP_RRQ: u16 = 1;
/// Write request.
pub const OP_WRQ: u16 = 2;

/// Whether the UDP payload `data` is a read or write request.
pub fn is_request(data: &[u8]) -> bool {
    match data {
        [a, b, ..] => matches!(u16::from_be_bytes([*a, *b]), OP_RRQ | OP_WRQ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_the_rest() {
        assert!(is_request(b"\x00\x01file.bin\x00octet\x00"));
        assert!(is_request(b"\x00\x02upload\x00netascii\x00"));
        assert!(!is_request(b"\x00\x03\x00\x01data"));
        assert!(!is_request(b"\x00\x04\x00\x01"));
        assert!(!is_request(b"\x00\x05\x00\x01oops\x00"));
        assert!(!is_request(b"\x00"));
        assert!(!is_request(b""));
    }
}
