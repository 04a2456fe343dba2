"""Embedding-space operators: k-means clusters, semantic dedup, cluster-based pruning."""
