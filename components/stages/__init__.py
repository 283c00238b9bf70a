"""One module per pipeline stage: `run(params) -> summary`; no prefect or dvc imports."""
