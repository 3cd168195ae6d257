"""The one exception family every vae-digits package raises for bad input."""


class VaeDigitsError(ValueError):
    """Bad input: an argument, a file or a bundle. The message is one line that says what to do."""


class DataError(VaeDigitsError):
    """A data set that is missing, unreadable or of the wrong shape."""


class BundleError(VaeDigitsError):
    """A model bundle that is missing, malformed, tampered with or not loadable."""
