//! Packet I/O behind the worker loop.
