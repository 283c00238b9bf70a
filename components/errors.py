"""The errors genaug raises for bad input: each names the file or key at fault and the fix."""


class GenaugError(Exception):
    """Base of every error meant for the user; the CLI prints it without a traceback and exits with exit_code."""

    exit_code = 2


class ParamsError(GenaugError):
    """params.yaml is missing, unreadable, or has a bad key, type or value."""


class DataError(GenaugError):
    """Input data is missing, corrupt, or inconsistent with the params."""


class StorageError(GenaugError):
    """An output cannot be written: the disk is full, the folder read-only or not ours. The previous output is
    kept (outputs are written beside it and renamed over it only when complete)."""


class VersionError(GenaugError):
    """The dataset cannot be versioned (workspace out of date, git or DVC refused)."""


class GateRefused(VersionError):
    """The release gate refused the version: its synthetic data does not help enough. An outcome, not a
    fault, so the command line exits with its own status (exit_code) that scripts can tell apart."""

    exit_code = 3


class DivergenceError(GenaugError):
    """Training went wrong (NaN/inf losses, a discriminator that wins every time); the last good
    checkpoint is kept and no final model is written."""


class ClusterError(GenaugError):
    """The Dask cluster named by GENAUG_DASK_SCHEDULER cannot be used (components/fanout.py)."""
