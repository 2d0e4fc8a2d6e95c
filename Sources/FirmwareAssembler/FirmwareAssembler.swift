// FirmwareAssembler module
