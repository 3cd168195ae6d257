"""The one exception family every vae-digits package raises, for bad input and for failed work."""


class VaeDigitsError(ValueError):
    """Bad input: an argument, a file or a bundle. The message is one line that says what to do.

    The base of every vae-digits error; a ValueError, so code that already catches ValueError for
    bad arguments catches it too.

    Examples:
        >>> from vae_runtime import Generator, VaeDigitsError
        >>> try:
        ...     Generator.load().generate(12)
        ... except VaeDigitsError as error:
        ...     print(error)
        label 12 is out of range: this bundle has labels 0-9
    """


class DataError(VaeDigitsError):
    """A data set that is missing, unreadable or of the wrong shape."""


class BundleError(VaeDigitsError):
    """A model bundle that is missing, malformed, tampered with or not loadable."""


class TooLargeError(VaeDigitsError):
    """Bad input that is too large to take: a file, an image, a request body."""


class WorkError(VaeDigitsError):
    """Good input, failed work: a check that did not pass, an output that could not be written."""


def first_line(error: Exception, limit: int = 300) -> str:
    """A library's exception as one short line for a VaeDigitsError message."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__
