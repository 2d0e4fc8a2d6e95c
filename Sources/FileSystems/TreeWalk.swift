import DiskImage

/// One entry of a walk: its path relative to the walked root ("" for the root itself,
/// "etc/fstab" below it; raw bytes), its metadata, and the reader that holds its contents.
public struct WalkEntry {
    public var path: [UInt8]
    public var metadata: Metadata
    /// Set when this non-directory was already met at another path (a hardlink, or the same
    /// file seen again through a bind mount): that first path, relative like `path`.
    public var hardlinkTarget: [UInt8]?
    /// With `hardlinkTarget`: true when the first path was met through another view of the
    /// filesystem (another mount of a namespace: the same file seen again through a bind), false
    /// for a hardlink met again in the same view.
    public var metThroughAnotherView: Bool = false
    /// The filesystem to read a regular file's contents from (`metadata.inode` there).
    public var reader: any FileSystemReader

    public init(path: [UInt8], metadata: Metadata, hardlinkTarget: [UInt8]? = nil, reader: any FileSystemReader) {
        self.path = path
        self.metadata = metadata
        self.hardlinkTarget = hardlinkTarget
        self.reader = reader
    }

    /// The path as text, for messages (invalid UTF-8 shown with replacement characters).
    public var displayPath: String { "/" + String(decoding: path, as: UTF8.self) }
}

/// A problem met during a walk that did not stop it: the path and what went wrong.
public struct WalkProblem: Sendable, CustomStringConvertible {
    public var path: String
    public var error: FWError

    public init(path: String, error: FWError) {
        self.path = path
        self.error = error
    }

    public var description: String { "\(path): \(error.message)" }
    /// With the error's places (image, partition) too: for reports of a whole namespace, where
    /// the path alone does not say which filesystem it came from.
    public var placedDescription: String { "\(path): \(error.description)" }
}

/// Safety limits of the walk (documented in docs/limits.md).
public enum WalkLimits {
    /// Directory nesting below the root.
    public static let maximumDepth = 1024
    /// Entries in one directory.
    public static let maximumDirectoryEntries = 4_000_000
}

/// The one walk of fwassemble: a filesystem, a Docker container's merged layers or the whole
/// assembled namespace (all of them `FileSystemReader`s) depth-first, children in bytewise name
/// order, parents before children: a stable order that does not depend on the on-disk order of
/// directory entries.
///
/// Hardlink identity: a non-directory met again (the same `linkIdentity`: filesystem and inode)
/// comes with `hardlinkTarget` set to the first path it was met at. Only files with a link count
/// above 1, or that the reader says may appear again (a filesystem mounted twice), are
/// remembered, so memory stays bounded by those and by the open directories on the current path.
/// Unreadable inodes and directories, cycles and exceeded limits become `problems` and the walk
/// goes on; so do unreadable xattrs (`Metadata.unreadableXattrs`), whose entry is kept.
public struct TreeWalk: Sequence, IteratorProtocol {
    private let reader: any FileSystemReader
    private var stack: [Frame] = []
    private var started = false
    private let startInode: UInt64
    private let startPath: [UInt8]
    private let excluded: [NamespacePath: String]
    private var firstPaths: [FileIdentity: (path: [UInt8], view: Int)] = [:]
    /// Problems met so far (unreadable entries are skipped and listed here).
    public private(set) var problems: [WalkProblem] = []

    private struct Frame {
        var path: [UInt8]
        /// The same path as components, made from the parent's (not split again from the bytes:
        /// a walk 1024 levels deep would split 500,000 components).
        var namespacePath: NamespacePath
        var inode: UInt64
        var entries: [DirectoryEntry]
        var index: Int
    }

    /// Walks the whole filesystem, or the subtree at `inode` (reported with paths under `path`).
    /// Entries at `excluding` paths are left out with everything below them, each recorded once
    /// as a problem with the reason given.
    public init(_ reader: any FileSystemReader, from inode: UInt64? = nil, path: [UInt8] = [],
                excluding: [NamespacePath: String] = [:]) {
        self.reader = reader
        self.startInode = inode ?? reader.rootInode
        self.startPath = path
        self.excluded = excluding
    }

    public mutating func next() -> WalkEntry? {
        if !started {
            started = true
            do {
                let meta = try reader.metadata(of: startInode)
                if let lost = meta.unreadableXattrs { record(startPath, lost) }
                if meta.type == .directory { push(path: startPath, namespacePath: NamespacePath(bytes: startPath), inode: startInode) }
                return WalkEntry(path: startPath, metadata: meta, reader: reader)
            } catch {
                record(startPath, error)
                return nil
            }
        }
        while var frame = stack.popLast() {
            guard frame.index < frame.entries.count else { continue }
            let entry = frame.entries[frame.index]
            frame.index += 1
            stack.append(frame)
            let path = frame.path.isEmpty ? entry.name : frame.path + [0x2F] + entry.name
            if !excluded.isEmpty, let reason = excluded[NamespacePath(bytes: path)] {
                record(path, FWError(.invalidArgument, reason))
                continue
            }
            do {
                let meta = try reader.metadata(of: entry.inode)
                if let lost = meta.unreadableXattrs { record(path, lost) }
                if meta.type == .directory {
                    if stack.contains(where: { $0.inode == entry.inode }) || entry.inode == startInode {
                        record(path, FWError(.corrupt, "directory contains itself (inode \(reader.linkIdentity(of: entry.inode).inode)); not descended"))
                    } else if stack.count >= WalkLimits.maximumDepth {
                        record(path, FWError(.limitExceeded, "deeper than \(WalkLimits.maximumDepth) directories; not descended"))
                    } else {
                        push(path: path, namespacePath: frame.namespacePath.child(entry.name), inode: entry.inode)
                    }
                    return WalkEntry(path: path, metadata: meta, reader: reader)
                }
                var target: [UInt8]?
                var otherView = false
                if meta.linkCount > 1 || reader.mayAppearAgain(entry.inode) {
                    let key = reader.linkIdentity(of: entry.inode)
                    let view = reader.view(of: entry.inode)
                    if let first = firstPaths[key] {
                        target = first.path
                        otherView = first.view != view
                    } else {
                        firstPaths[key] = (path, view)
                    }
                }
                var item = WalkEntry(path: path, metadata: meta, hardlinkTarget: target, reader: reader)
                item.metThroughAnotherView = otherView
                return item
            } catch {
                record(path, error)
            }
        }
        return nil
    }

    private mutating func push(path: [UInt8], namespacePath: NamespacePath, inode: UInt64) {
        do {
            var entries = try reader.directoryEntries(of: inode, at: namespacePath)
            if entries.count > WalkLimits.maximumDirectoryEntries {
                record(path, FWError(.limitExceeded, "directory has \(entries.count) entries, over the limit of \(WalkLimits.maximumDirectoryEntries); not listed"))
                return
            }
            entries.removeAll { NamespacePath.isDotEntry($0.name) }
            for bad in entries where !NamespacePath.isValidName(bad.name) {
                record(path, FWError(.corrupt, "entry with an invalid name \(bad.name) (inode \(reader.linkIdentity(of: bad.inode).inode)) skipped"))
            }
            entries.removeAll { !NamespacePath.isValidName($0.name) }
            entries.sort { $0.name.lexicographicallyPrecedes($1.name) }
            // Duplicate names (a corrupt directory) would make two entries with one path.
            var unique: [DirectoryEntry] = []
            unique.reserveCapacity(entries.count)
            for e in entries where unique.last?.name != e.name { unique.append(e) }
            stack.append(Frame(path: path, namespacePath: namespacePath, inode: inode, entries: unique, index: 0))
        } catch {
            record(path, error)
        }
    }

    private mutating func record(_ path: [UInt8], _ error: Error) {
        let display = "/" + String(decoding: path, as: UTF8.self)
        let fw = FWError(error)
        problems.append(WalkProblem(path: display, error: fw))
    }
}

/// A walk of entries in archive order with the problems met so far: `TreeWalk`, or a walk built
/// on one (`--rehost`'s). The output loops (the tar `Archiver`, the ext4 writer) take any.
public protocol EntryWalk: IteratorProtocol where Element == WalkEntry {
    var problems: [WalkProblem] { get }
}

extension TreeWalk: EntryWalk {}
