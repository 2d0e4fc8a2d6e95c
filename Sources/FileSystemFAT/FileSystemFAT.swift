// FileSystemFAT module
