//! Stage 1: capture. Packet sources (capture files via libpcap, live interfaces) yielding
//! timestamped raw frames with their link type.
