"""Recognition by embedding: galleries of enrolled identities, verification and search (torch-free)."""
