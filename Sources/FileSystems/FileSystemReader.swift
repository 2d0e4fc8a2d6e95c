import DiskImage

/// A read-only filesystem in userspace: ext2/3/4, squashfs, EROFS, FAT.
///
/// Readers are lazy: opening one reads the superblock only; inodes and directories are read on
/// demand, so memory is bounded by what the caller holds, not by the filesystem's size.
/// A reader is used from one thread at a time.
public protocol FileSystemReader: AnyObject {
    /// Short format name: "ext4", "squashfs", "erofs", "vfat".
    var formatName: String { get }
    /// Where it lives, for messages: "disk.img partition 3".
    var sourceName: String { get }
    /// The root directory's inode.
    var rootInode: UInt64 { get }
    /// Everything stored about one inode.
    func metadata(of inode: UInt64) throws -> Metadata
    /// The entries of a directory, without "." and "..", in any order.
    func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry]
    /// A stream over a regular file's contents (sparse regions read as zeros).
    func openFile(_ inode: UInt64) throws -> any FileContents
    /// The entry called `name` in a directory, as the kernel's lookup would find it (exact bytes;
    /// FAT compares case-insensitively). The default searches `directoryEntries(of:)`.
    func entry(named name: [UInt8], in directory: UInt64) throws -> DirectoryEntry?
    /// The entries of the directory at `path` (a namespace needs the path for the mount points
    /// below it and for its messages). The default ignores the path.
    func directoryEntries(of inode: UInt64, at path: NamespacePath) throws -> [DirectoryEntry]
    /// Which file an inode is, for hardlink identity across views: the filesystem that stores it
    /// and its inode number there. The default is this reader and `inode`.
    func linkIdentity(of inode: UInt64) -> FileIdentity
    /// True when the file can be met again at another path although its link count is 1 (its
    /// filesystem is mounted at several places in a namespace). The default is false.
    func mayAppearAgain(_ inode: UInt64) -> Bool
    /// Which view of its filesystem shows an inode: in a namespace, the mount that provides it
    /// (a bind of a directory is a view of its own); in a plain filesystem always 0. Tells a file
    /// met again through another mount from a hardlink met again in the same mount.
    func view(of inode: UInt64) -> Int
    /// The bytes the filesystem says it spans (from its superblock), nil where the format keeps
    /// no such size. A partition smaller than this holds the filesystem cut short: the planner
    /// warns (the kernel refuses to mount such an ext4). The default is nil.
    var declaredSize: UInt64? { get }
    /// True for a directory the filesystem shows without a record of its own (a tar's parent
    /// directory that no member lists): its metadata is a default, so a merge (an overlay, a tar
    /// added into an image) keeps the metadata of a directory already there. The default is false.
    func isImpliedDirectory(_ inode: UInt64) -> Bool
}

/// A file's identity for hardlinks: the filesystem that stores it and its inode number there.
public struct FileIdentity: Hashable {
    public var filesystem: ObjectIdentifier
    public var inode: UInt64

    public init(filesystem: ObjectIdentifier, inode: UInt64) {
        self.filesystem = filesystem
        self.inode = inode
    }
}

/// An inode record as a reader decodes it from its filesystem, typed by its mode.
public protocol InodeRecord {
    /// The inode's mode as `st_mode` holds it: the type bits (`S_IFMT`) and the permission bits.
    var posixMode: UInt32 { get }
}

extension InodeRecord {
    /// The type its mode says; nil for a mode of no type Linux knows.
    public var fileType: FileType? { Metadata.fileType(mode: posixMode) }
}

/// A reader whose inodes are records it loads by number (EROFS, f2fs, UBIFS): the three calls of
/// `FileSystemReader` that start from an inode number are written once here. Each loads the
/// record, checks its type (`fileType(of:inode:)`, `checked(_:inode:is:)`) and hands it to the
/// reader's own decoding, with the reader's place on every error.
package protocol InodeTableReader: FileSystemReader {
    associatedtype Inode: InodeRecord
    /// The disk and partition its errors name.
    var place: FWError.Place { get }
    /// The record of inode `inode`.
    func inode(_ inode: UInt64) throws -> Inode
    /// Everything stored about `record`, the record of `inode`, whose mode says `type`.
    func metadata(of record: Inode, type: FileType, inode: UInt64) throws -> Metadata
    /// The entries of `directory`, the record of directory `inode`.
    func entries(of directory: Inode, inode: UInt64) throws -> [DirectoryEntry]
    /// A stream over `file`, the record of regular file `inode`.
    func contents(of file: Inode, inode: UInt64) throws -> any FileContents
}

extension InodeTableReader {
    public func metadata(of inode: UInt64) throws -> Metadata {
        try place.placing {
            let record = try self.inode(inode)
            return try metadata(of: record, type: fileType(of: record, inode: inode), inode: inode)
        }
    }

    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        try place.placing {
            try entries(of: checked(self.inode(inode), inode: inode, is: .directory), inode: inode)
        }
    }

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        try place.placing {
            try contents(of: checked(self.inode(inode), inode: inode, is: .regular), inode: inode)
        }
    }
}

/// Sequential reader of one file's bytes, in chunks the caller sizes.
public protocol FileContents: AnyObject {
    /// The file's length in bytes.
    var size: UInt64 { get }
    /// Fills `buffer` with the next bytes; returns how many (0 at the end only).
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Problems met by the reads so far that did not stop them (a btrfs data checksum mismatch:
    /// the bytes were given as stored). The default is none.
    var warnings: [String] { get }
}

extension FileContents {
    public var warnings: [String] { [] }

    /// Hands the rest of the file to `body` in pieces of at most 1 MiB (never the whole file).
    public func forEachChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while case let n = try read(into: buffer), n > 0 {
            try body(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        }
    }

    /// The next `count` bytes, fewer only at the end of the file (short reads are read on).
    public func readPrefix(_ count: Int) throws -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = try result.withUnsafeMutableBytes { try read(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...])) }
            if n == 0 { break }
            filled += n
        }
        return Array(result[0..<filled])
    }
}

extension FileSystemReader {
    public var declaredSize: UInt64? { nil }

    public func entry(named name: [UInt8], in directory: UInt64) throws -> DirectoryEntry? {
        try directoryEntries(of: directory).first { $0.name == name }
    }

    public func directoryEntries(of inode: UInt64, at path: NamespacePath) throws -> [DirectoryEntry] {
        try directoryEntries(of: inode)
    }

    public func linkIdentity(of inode: UInt64) -> FileIdentity {
        FileIdentity(filesystem: ObjectIdentifier(self), inode: inode)
    }

    public func mayAppearAgain(_ inode: UInt64) -> Bool { false }

    public func view(of inode: UInt64) -> Int { 0 }

    public func isImpliedDirectory(_ inode: UInt64) -> Bool { false }

    /// Looks up a path ("/etc/fstab" or "etc/fstab") without following symlinks in the last
    /// component; intermediate symlinks are followed inside this filesystem (at most 40 hops).
    /// Returns nil when a component does not exist.
    public func lookup(_ path: String) throws -> UInt64? {
        try lookup(Array(path.utf8))
    }

    public func lookup(_ path: [UInt8], followLast: Bool = false) throws -> UInt64? {
        let resolver = PathResolver<UInt64>(root: rootInode, child: { parent, _, name in
            guard try self.metadata(of: parent).type == .directory else { return nil }
            return try self.entry(named: name, in: parent)?.inode
        }, symlinkTarget: { inode in
            let meta = try self.metadata(of: inode)
            return meta.type == .symlink ? meta.symlinkTarget : nil
        })
        return try resolver.resolve(PathComponents.split(path), followLast: followLast)?.node
    }

    /// The inode at `path`, nil when it does not exist or cannot be followed. For probes that
    /// ask what a disk looks like ("is there an /ostree?"), where a path the reader cannot follow
    /// answers no as a missing one does; code reading a file the device reads uses `lookup` and
    /// reports the error.
    public func probe(_ path: String, followLast: Bool = false) -> UInt64? {
        (try? lookup(Array(path.utf8), followLast: followLast)) ?? nil   // a probe: unreadable answers "not there", as documented
    }

    /// The metadata at `path`, nil when it does not exist or cannot be read (a probe, as
    /// `probe(_:followLast:)`).
    public func probeMetadata(_ path: String, followLast: Bool = false) -> Metadata? {
        probe(path, followLast: followLast).flatMap { try? metadata(of: $0) }   // a probe: unreadable answers "not there"
    }

    /// `record`, the record of `inode`, when it is of type `expected`; otherwise the error of a
    /// caller that asked a directory's entries or a file's contents of an inode of another type
    /// ("erofs inode 12 is not a directory").
    public func checked<Record: InodeRecord>(_ record: Record, inode: UInt64, is expected: FileType) throws -> Record {
        guard record.fileType == expected else {
            let what = switch expected {
            case .directory: "a directory"
            case .regular: "a regular file"
            default: "a \(expected.rawValue)"
            }
            throw FWError(.invalidArgument, "\(formatName) inode \(inode) is not \(what)")
        }
        return record
    }

    /// The type of `record`, the record of `inode`; an error naming its mode when the mode says
    /// no type Linux knows.
    public func fileType<Record: InodeRecord>(of record: Record, inode: UInt64) throws -> FileType {
        guard let type = record.fileType else {
            throw FWError.corrupt("\(formatName) inode \(inode): unknown file type in mode 0o\(String(record.posixMode, radix: 8))")
        }
        return type
    }

    /// Checks the stored length of the target of symlink `inode` before the target is read: Linux
    /// refuses a longer one than `PathComponents.maximumSymlinkLength`, so such an inode is corrupt.
    public func checkSymlinkLength<Length: BinaryInteger>(_ length: Length, inode: UInt64) throws {
        guard length <= PathComponents.maximumSymlinkLength else {
            throw FWError.corrupt("\(formatName) inode \(inode): symlink target of \(length) bytes is longer than \(PathComponents.maximumSymlinkLength)")
        }
    }

    /// Reads a whole small file (config files: fstab, units, grubenv) with a size cap.
    public func readSmallFile(_ inode: UInt64, limit: Int = 16 << 20) throws -> [UInt8] {
        let file = try openFile(inode)
        guard file.size <= UInt64(limit) else {
            throw FWError(.limitExceeded, "file of \(file.size) bytes is over the \(limit)-byte limit for configuration files")
        }
        return try file.readPrefix(Int(file.size))
    }
}

/// Path helpers shared by the readers and the walk.
public enum PathComponents {
    /// Symlink hops followed while resolving a path, as Linux allows.
    public static let maximumSymlinkHops = 40
    /// Longest symlink target a reader accepts: Linux's PATH_MAX (the kernel refuses a longer
    /// target than a page); ext4's own limit is larger.
    public static let maximumSymlinkLength = 4096

    /// Splits on "/" dropping empty components.
    public static func split(_ path: [UInt8]) -> [[UInt8]] {
        path.split(separator: 0x2F, omittingEmptySubsequences: true).map(Array.init)
    }
}
