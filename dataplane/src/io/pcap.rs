//! pcap reader and writer (skeleton; see issue 3).
