"""imaging extractor: not built yet (see the project's issues); `pfs extract` reports it as missing."""
