"""Data contracts: pydantic v2 models shared by every part of the reconciler."""
