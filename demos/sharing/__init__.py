"""Share links: the protocol and API (links), the snapshots, the tabs' share panels."""
