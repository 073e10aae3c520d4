"""Example sources: files with line numbers, built-in packaged datasets, ``datasets`` folders and hub datasets
(``sources``, ``files``, ``builtin``, ``hub``), streamed splits (``streaming``), conversation formats read as
messages (``formats``), column mapping (``columns``) and the token cache (``cache``)."""
