"""Readers for public dataset formats used in evaluation and tests (numpy only)."""
