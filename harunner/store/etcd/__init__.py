"""The etcd backend: the store's contract kept in etcd, for clusters of several hosts (docs/etcd.md)."""
