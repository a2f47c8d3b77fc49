"""The two ways a backend says no: it cannot run here (ObserverUnavailable), or what it was asked
is wrong (ObserverError). Each message is one line a user can act on."""


class ObserverUnavailable(Exception):
    """The mechanism cannot run here; the message is the one-line reason shown to users."""


class ObserverError(Exception):
    """A user-facing failure (bad PID, ambiguous name ...); the message says what to do."""
