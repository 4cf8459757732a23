"""One exception tree for the bot, so each entry point's error boundary knows what is ours."""


class VillagewatchError(Exception):
    """Base of the errors the bot raises on purpose; the message is meant for an operator."""


class InputError(VillagewatchError):
    """A file or line given by a person cannot be used; the message names file and line."""
