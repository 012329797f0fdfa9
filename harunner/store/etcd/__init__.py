"""The etcd backend: the store's contract kept in etcd, for several hosts (docs/etcd.md)."""
