"""Example sources: files with line numbers, built-in packaged datasets, hub datasets."""
