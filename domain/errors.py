"""The exceptions autoopt raises on purpose.

Every error the tool expects to meet derives from one root, so the command line
can turn exactly these into a one-line ``Error: ...`` and let anything else
surface as the bug it is::

    OptimizerError
    ├── ConfigurationError          a settings file or value is invalid
    ├── DSLFormatError              the input is not a Dify app we can read
    ├── NotFoundError               a run, prompt, version or event does not exist
    ├── ConcurrencyError            a stream moved on since the writer read it
    │   └── DuplicateEventError     a batch mixes stored and new event ids
    ├── StorageError                the database or the file store failed
    │   ├── NotADatabaseError       the database file is not SQLite
    │   ├── SchemaVersionError      the database is behind (or ahead of) the code
    │   ├── ImmutableRecordError    something tried to change what is append-only
    │   ├── ReadOnlyError           a query that may only read tried to write
    │   └── ProjectionError         a read model could not apply an event
    ├── EventSchemaError            a stored event cannot be read back
    └── LLMError                    the language model could not be used
        ├── LLMAuthenticationError  the key was refused
        ├── LLMTimeoutError         no answer in time, retries spent
        ├── LLMResponseError        an answer we cannot use
        └── BudgetExceededError     the cost limit was reached

Lower layers (SQLAlchemy, PyYAML, the OS, HTTP) are translated into this tree at
the seam where they are met, always with ``raise ... from exc`` so the cause
stays in the traceback for ``-vv`` debugging. Messages name the file or object
and the problem, and never carry a secret.
"""

from __future__ import annotations


class OptimizerError(Exception):
    """Root of every error autoopt raises deliberately."""


class ConfigurationError(OptimizerError):
    """A settings file, environment variable or flag holds an invalid value."""


class DSLFormatError(OptimizerError):
    """The input is not a Dify app DSL that can be read."""


class NotFoundError(OptimizerError):
    """The requested run, prompt, version or event does not exist."""


class ConcurrencyError(OptimizerError):
    """An append expected a stream version that is no longer current."""


class DuplicateEventError(ConcurrencyError):
    """A batch holds some event ids that are stored and some that are not."""


class StorageError(OptimizerError):
    """The database or the version store failed to read or write."""


class NotADatabaseError(StorageError):
    """The configured database file exists but is not a SQLite database."""


class SchemaVersionError(StorageError):
    """The database schema is not at the revision this code expects."""


class ImmutableRecordError(StorageError):
    """An UPDATE or DELETE was attempted on append-only data."""


class ReadOnlyError(StorageError):
    """A statement given to a read-only command would write; it was refused, nothing changed."""


class ProjectionError(StorageError):
    """A projector could not apply an event; it stops at that position."""


class EventSchemaError(OptimizerError):
    """A stored event has an unknown type or a payload that does not validate."""


class LLMError(OptimizerError):
    """The language model could not be used for this request."""


class LLMAuthenticationError(LLMError):
    """The provider refused the API key; LLM use stops for the run."""


class LLMTimeoutError(LLMError):
    """The provider did not answer in time after all retries."""


class LLMResponseError(LLMError):
    """The provider answered with something that cannot be used."""


class BudgetExceededError(LLMError):
    """The configured cost limit for the run has been reached."""
