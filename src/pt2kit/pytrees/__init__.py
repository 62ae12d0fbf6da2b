"""Containers torch.export cannot flatten (transformers caches, dataclasses), registered as pytree nodes
(`types`, `nodes`), and the JSON codec for the constants kept in their specs (`spec_codec`).

May import: the base (`errors`) only.
"""
