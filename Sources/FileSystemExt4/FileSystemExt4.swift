// FileSystemExt4 module
