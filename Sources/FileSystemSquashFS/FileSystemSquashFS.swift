// FileSystemSquashFS module
