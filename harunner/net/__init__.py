"""The wire: heartbeat-bus messages and their codec (`bus`), and all ZeroMQ code (`sockets`)."""
