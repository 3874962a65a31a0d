"""Data: manifests, corpus readers, loaders."""
