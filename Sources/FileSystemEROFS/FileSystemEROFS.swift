// FileSystemEROFS module
