import DiskImage

/// A directory of another filesystem seen as the root of its own (a chroot): absolute symlinks
/// and ".." at the top resolve inside it. The OSTree planner reads the booted deployment this way.
public final class SubtreeFileSystem: FileSystemReader {
    public let base: any FileSystemReader
    public let rootInode: UInt64
    public let sourceName: String
    public var formatName: String { base.formatName }

    public init(base: any FileSystemReader, root: UInt64, name: String) {
        self.base = base
        self.rootInode = root
        self.sourceName = name
    }

    public func metadata(of inode: UInt64) throws -> Metadata { try base.metadata(of: inode) }
    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] { try base.directoryEntries(of: inode) }
    public func openFile(_ inode: UInt64) throws -> any FileContents { try base.openFile(inode) }
    public func entry(named name: [UInt8], in directory: UInt64) throws -> DirectoryEntry? {
        try base.entry(named: name, in: directory)
    }
}
