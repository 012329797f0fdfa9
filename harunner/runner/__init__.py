"""A runner slot: its I/O shell (`runner`) around pure cores (detector, takeover, scheduler)."""
