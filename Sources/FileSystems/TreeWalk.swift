import DiskImage

/// One entry of a walk: its path relative to the filesystem root ("" for the root itself,
/// "etc/fstab" below it; raw bytes) and its metadata.
public struct WalkEntry: Sendable {
    public var path: [UInt8]
    public var metadata: Metadata

    public init(path: [UInt8], metadata: Metadata) {
        self.path = path
        self.metadata = metadata
    }

    /// The path as text, for messages (invalid UTF-8 shown with replacement characters).
    public var displayPath: String { "/" + String(decoding: path, as: UTF8.self) }
}

/// A problem met during a walk that did not stop it: the path and what went wrong.
public struct WalkProblem: Sendable, CustomStringConvertible {
    public var path: String
    public var error: FWError
    public var description: String { "\(path): \(error.message)" }
}

/// Safety limits of the walk (documented in docs/limits.md).
public enum WalkLimits {
    /// Directory nesting below the root.
    public static let maximumDepth = 1024
    /// Entries in one directory.
    public static let maximumDirectoryEntries = 4_000_000
}

/// Walks a filesystem depth-first, children in bytewise name order, parents before children:
/// a stable order that does not depend on the on-disk order of directory entries.
///
/// Memory is bounded by the open directories on the current path. Unreadable inodes and
/// directories, cycles and exceeded limits become `problems` and the walk goes on.
public struct TreeWalk: Sequence, IteratorProtocol {
    private let reader: any FileSystemReader
    private var stack: [Frame] = []
    private var started = false
    private let startInode: UInt64
    private let startPath: [UInt8]
    /// Problems met so far (unreadable entries are skipped and listed here).
    public private(set) var problems: [WalkProblem] = []

    private struct Frame {
        var path: [UInt8]
        var inode: UInt64
        var entries: [DirectoryEntry]
        var index: Int
    }

    /// Walks the whole filesystem, or the subtree at `inode` (reported with paths under `path`).
    public init(_ reader: any FileSystemReader, from inode: UInt64? = nil, path: [UInt8] = []) {
        self.reader = reader
        self.startInode = inode ?? reader.rootInode
        self.startPath = path
    }

    public mutating func next() -> WalkEntry? {
        if !started {
            started = true
            do {
                let meta = try reader.metadata(of: startInode)
                if meta.type == .directory { push(path: startPath, inode: startInode) }
                return WalkEntry(path: startPath, metadata: meta)
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
            do {
                let meta = try reader.metadata(of: entry.inode)
                if meta.type == .directory {
                    if stack.contains(where: { $0.inode == entry.inode }) || entry.inode == startInode {
                        record(path, FWError(.corrupt, "directory contains itself (inode \(entry.inode)); not descended"))
                    } else if stack.count >= WalkLimits.maximumDepth {
                        record(path, FWError(.limitExceeded, "deeper than \(WalkLimits.maximumDepth) directories; not descended"))
                    } else {
                        push(path: path, inode: entry.inode)
                    }
                }
                return WalkEntry(path: path, metadata: meta)
            } catch {
                record(path, error)
            }
        }
        return nil
    }

    private mutating func push(path: [UInt8], inode: UInt64) {
        do {
            var entries = try reader.directoryEntries(of: inode)
            if entries.count > WalkLimits.maximumDirectoryEntries {
                record(path, FWError(.limitExceeded, "directory has \(entries.count) entries, over the limit of \(WalkLimits.maximumDirectoryEntries); not listed"))
                return
            }
            entries.removeAll { $0.name == [0x2E] || $0.name == [0x2E, 0x2E] }
            for bad in entries where bad.name.isEmpty || bad.name.contains(0x2F) || bad.name.contains(0) {
                record(path, FWError(.corrupt, "entry with an invalid name \(bad.name) (inode \(bad.inode)) skipped"))
            }
            entries.removeAll { $0.name.isEmpty || $0.name.contains(0x2F) || $0.name.contains(0) }
            entries.sort { $0.name.lexicographicallyPrecedes($1.name) }
            // Duplicate names (a corrupt directory) would make two entries with one path.
            var unique: [DirectoryEntry] = []
            unique.reserveCapacity(entries.count)
            for e in entries where unique.last?.name != e.name { unique.append(e) }
            stack.append(Frame(path: path, inode: inode, entries: unique, index: 0))
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
