"""Prefect flows: orchestration only; the logic lives in components/."""
